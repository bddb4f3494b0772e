"""Orders request and response models."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from functions.orders.payment import expiry_in_future, luhn_valid
from shared.catalog_contract import Sku
from shared.fields import STORED, Email, trimmed, trimmed_pattern, whole_number
from shared.ids import USER_ID_PATTERN
from shared.model import Model
from shared.money import Currency, DecimalString

Status = Literal["pending", "paid", "confirmed", "payment_failed", "cancelled"]
E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$"), Field(examples=["+33612345678"])]
MAX_ORDER_LINES = 50
# Digits, one space or '-' allowed between two of them; 12-19 digits in all (luhn_valid counts them).
CARD_NUMBER_PATTERN = r"^[0-9](?:[ -]?[0-9]){11,18}$"
_CARD_NUMBER, _CVV = re.compile(CARD_NUMBER_PATTERN), re.compile(r"^[0-9]{3,4}$")


# Trimmed, then 2-12 letters, digits, spaces or '-' (so the kept text starts and ends with no space).
PostalCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9 -]{2,12}$"), WithJsonSchema({
    "type": "string", "pattern": trimmed_pattern(2, 12, kept="[A-Za-z0-9 -]", edge="[A-Za-z0-9-]"),
    "description": "Leading and trailing whitespace is removed; 2-12 letters, digits, spaces or '-' must remain",
    "examples": ["69001"]})]


class Address(Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    street: trimmed(1, 200)
    city: trimmed(1, 100)
    postal_code: PostalCode
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"), Field(description="ISO 3166-1 alpha-2")]
    details: trimmed(0, 200) | None = None


class Payment(Model):
    """Card details: validated, charged, then reduced to the last four digits — never stored or logged whole."""

    model_config = ConfigDict(extra="forbid", strict=True)

    card_number: Annotated[SecretStr, WithJsonSchema({
        "type": "string", "writeOnly": True, "pattern": CARD_NUMBER_PATTERN, "examples": ["4242 4242 4242 4242"],
        "description": "12-19 digits, spaces or '-' between them allowed; the digits must pass the Luhn check "
                       "(422 with the field named otherwise)"})]
    expiry: Annotated[str, StringConstraints(pattern=r"^(0[1-9]|1[0-2])/[0-9]{2}$"), Field(
        description="MM/YY, not in the past (422 with the field named otherwise)", examples=["12/99"])]
    cvv: Annotated[SecretStr, WithJsonSchema({"type": "string", "writeOnly": True, "pattern": r"^[0-9]{3,4}$",
                                              "examples": ["123"], "description": "3 or 4 digits"})]

    @field_validator("card_number")
    @classmethod
    def _luhn(cls, value: SecretStr) -> SecretStr:
        number = value.get_secret_value()
        digits = re.sub(r"[ -]", "", number)
        if not _CARD_NUMBER.fullmatch(number) or not luhn_valid(digits):
            raise ValueError("not a valid card number")
        return SecretStr(digits)

    @field_validator("cvv")
    @classmethod
    def _digits(cls, value: SecretStr) -> SecretStr:
        if not _CVV.fullmatch(value.get_secret_value()):
            raise ValueError("the CVV is 3 or 4 digits")
        return value

    @field_validator("expiry")
    @classmethod
    def _not_expired(cls, value: str) -> str:
        if not expiry_in_future(value, datetime.now(timezone.utc).date()):
            raise ValueError("the card has expired")
        return value

    @property
    def last4(self) -> str:
        return self.card_number.get_secret_value()[-4:]


class Contact(Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    email: Email | None = None
    phone: E164 | None = None


class OrderItem(Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    product_sku: Sku
    quantity: whole_number(1, 100)


class CreateOrder(Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: Annotated[str, StringConstraints(pattern=USER_ID_PATTERN), Field(
        description="The token's own user (403 otherwise)")]
    shipping_address: Address
    payment: Payment
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=MAX_ORDER_LINES)] | None = Field(
        default=None, description="Without items, the user's cart is ordered; one line per product_sku (422 otherwise)")
    # A factory, not Contact(): no model is built at import (shared.model); the schema still shows the default.
    contact: Contact = Field(default_factory=Contact, json_schema_extra={"default": {"email": None, "phone": None}})

    @field_validator("items")
    @classmethod
    def _one_line_per_sku(cls, items: list[OrderItem] | None) -> list[OrderItem] | None:
        if items is not None and len({item.product_sku for item in items}) != len(items):
            raise ValueError("each product_sku may appear only once")
        return items

    def fingerprint(self) -> str:
        """The request as it matters for idempotency, card number included (the caller keys it with a secret)."""
        body = self.model_dump(mode="json", exclude={"payment"})
        return f"{body}|{self.payment.card_number.get_secret_value()}|{self.payment.expiry}"


class OrderLinePublic(Model):
    product_sku: str
    product_name: str
    quantity: int
    price_at_purchase: DecimalString
    line_total: DecimalString
    currency: Currency


class OrderPublic(Model):
    id: str
    user_id: str
    status: Status
    items: list[OrderLinePublic]
    total_price: DecimalString | None = Field(description="null while a pending order's stock is being reserved")
    currency: Currency | None
    shipping_address: Address
    contact: Contact
    card_last4: str
    failure_reason: str | None
    refunded_at: datetime | None = Field(default=None, description="when an approved charge was given back")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: dict) -> dict:
        """A stored order (with its lines) as the JSON the API answers."""
        return cls.model_validate({**row, "id": str(row["id"]), "total_price": row["total_amount"]},
                                  strict=False, context=STORED).model_dump(mode="json")


class OrderPage(Model):
    items: list[OrderPublic]
    total: int
    limit: int
    offset: int


class HistoryQuery(Model):
    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=100_000)] = 0
    status: Status | None = None


class OutboxQuery(Model):
    model_config = ConfigDict(extra="forbid")

    state: Literal["dead", "pending", "sent"] = "dead"
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=100_000)] = 0


class OutboxEntry(Model):
    id: str
    destination: Literal["sink", "release-stock", "cart"]
    event_type: str
    subject: str = Field(description="the order the row is about")
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    dead_at: datetime | None

    @classmethod
    def from_row(cls, row: dict) -> dict:
        return cls.model_validate({**row, "id": str(row["id"])}, strict=False).model_dump(mode="json")


class OutboxPage(Model):
    items: list[OutboxEntry]
    total: int
    limit: int
    offset: int


class CartLineRead(Model):
    """A line of the cart as an order reads it (cart-get-cart's `?priced=false` answer; other fields ignored)."""

    model_config = ConfigDict(strict=True)

    product_sku: str
    quantity: int


class CartRead(Model):
    items: list[CartLineRead]
