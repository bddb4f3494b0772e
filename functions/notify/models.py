"""Notification requests, the order-created event's data as this function reads it, and the ledger's rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, TypeAdapter, model_validator

E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
Channel = Literal["email", "sms", "log"]
Status = Literal["pending", "sent", "failed", "rejected"]
_email = TypeAdapter(EmailStr)
_phone = TypeAdapter(E164)


class NotificationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["email", "sms"]
    recipient: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
    template_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,50}$")] | None = None
    context: Annotated[dict[str, str | int | float | bool], Field(max_length=50)] = {}
    subject: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    body: Annotated[str, StringConstraints(min_length=1, max_length=5000)] | None = None

    @model_validator(mode="after")
    def _fits_its_channel(self) -> NotificationRequest:
        if self.type == "email":
            _email.validate_python(self.recipient)
            if self.subject is None and self.template_id is None:
                raise ValueError("an email needs a subject or a template_id")
        else:
            _phone.validate_python(self.recipient)
        if self.body is None and self.template_id is None:
            raise ValueError("send a body or a template_id")
        return self


class OrderLine(BaseModel):
    product_sku: str
    product_name: str
    quantity: Annotated[int, Field(ge=1)]
    line_total: Decimal


class OrderContact(BaseModel):
    email: EmailStr | None = None
    phone: E164 | None = None


class OrderCreated(BaseModel):
    """The data of com.example.shop.order.created, as far as a confirmation needs it."""

    order_id: uuid.UUID
    user_id: str
    items: Annotated[list[OrderLine], Field(min_length=1)]
    total_price: Decimal
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    contact: OrderContact = OrderContact()


class NotificationPublic(BaseModel):
    id: str
    source: str
    event_id: str
    order_id: str | None
    channel: Channel | None
    backend: str | None
    recipient: str
    subject: str | None
    status: Status
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class NotificationPage(BaseModel):
    items: list[NotificationPublic]
    total: int
    limit: int
    offset: int


class NotificationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: uuid.UUID | None = None
    recipient: Annotated[str, StringConstraints(min_length=1, max_length=320)] | None = None
    status: Status | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=100_000)] = 0


class Accepted(BaseModel):
    id: str
    status: Status
