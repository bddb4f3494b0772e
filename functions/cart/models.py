"""Cart request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, field_validator

from shared.catalog_contract import Sku
from shared.fields import QueryFlag, whole_number
from shared.model import Model
from shared.money import Currency, DecimalString

MAX_QUANTITY_PER_LINE = 100
MAX_LINES = 50
MAX_ORDERED_LINES = 100  # an order's lines, as many as one catalog lookup takes
MAX_ORDERED_QUANTITY = 1000  # an order line's quantity, as the catalog reserves it

Quantity = whole_number(1, MAX_QUANTITY_PER_LINE)


class AddItem(Model):
    """Quantities add up with the line already in the cart: past 100 per line or 50 lines is refused (422)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    product_sku: Sku
    quantity: Quantity = 1


class SetQuantity(Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    quantity: Quantity


class CartQuery(Model):
    """`?priced=false` answers the stored lines without asking the catalog (the orders function's read)."""

    model_config = ConfigDict(extra="forbid")

    priced: QueryFlag = True


class OrderedLine(Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    product_sku: Sku
    quantity: whole_number(1, MAX_ORDERED_QUANTITY)


class OrderedLines(Model):
    """What an order took from the cart: each ordered line comes out of the cart once per order id."""

    model_config = ConfigDict(extra="forbid", strict=True)

    lines: Annotated[list[OrderedLine], Field(min_length=1, max_length=MAX_ORDERED_LINES)]

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, lines: list[OrderedLine]) -> list[OrderedLine]:
        if len({line.product_sku for line in lines}) != len(lines):
            raise ValueError("each product_sku may appear only once")
        return lines


class StoredLine(Model):
    product_sku: str
    quantity: int


class CartLines(Model):
    """The cart's lines as stored, after an order's removal."""

    user_id: str
    items: list[StoredLine]
    applied: bool = Field(description="false when this order's quantities had already been removed: nothing changed")

    @classmethod
    def of(cls, user_id: str, lines: dict[str, int], applied: bool) -> CartLines:
        return cls(user_id=user_id, applied=applied,
                   items=[StoredLine(product_sku=sku, quantity=quantity) for sku, quantity in sorted(lines.items())])


class CartLine(Model):
    product_sku: str
    quantity: int
    name: str | None
    price_per_item: DecimalString | None
    item_total_price: DecimalString | None
    currency: Currency | None
    available: bool | None = Field(description="false when the product vanished or went inactive; "
                                               "null when the catalog could not be asked")


class CartPublic(Model):
    user_id: str
    items: list[CartLine]
    total_items: int
    total_price: DecimalString | None = Field(description="null when the lines mix currencies or are not priced")
    currency: Currency | None
    mixed_currencies: bool = False
    priced: bool = Field(description="false when asked with priced=false or when the catalog was unavailable: "
                                     "lines are shown as stored, unpriced")
    updated_at: datetime | None
