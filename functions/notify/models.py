"""Notification requests, the order-created event's data as this function reads it, the ledger's rows, and the
dead letters."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, model_validator

from functions.notify.templates import TEMPLATES
from shared.fields import Email, QueryFlag, text, trimmed
from shared.model import Model

E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
Channel = Literal["email", "sms", "log"]
Status = Literal["pending", "sending", "sent", "failed", "rejected"]
_email = TypeAdapter(Email)
_phone = TypeAdapter(E164)


class NotificationRequest(Model):
    """An email needs a subject or a template_id; the recipient is an email address (email) or an E.164 number
    (sms); a body or a template_id is needed, and a template's placeholders come from `context` (422 otherwise)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["email", "sms"]
    recipient: trimmed(1, 320)
    template_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,50}$"), Field(
        description=f"One of the shop's templates: {', '.join(sorted(TEMPLATES))} (422 otherwise)")] | None = None
    context: Annotated[dict[str, text(0, 5000) | int | float | bool], Field(max_length=50)] = {}
    subject: text(1, 200) | None = None
    body: text(1, 5000) | None = None

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


class OrderLine(Model):
    product_sku: str
    product_name: str
    quantity: Annotated[int, Field(ge=1)]
    line_total: Decimal


class OrderContact(Model):
    email: Email | None = None
    phone: E164 | None = None


class OrderCreated(Model):
    """The data of com.example.shop.order.created, as far as a confirmation needs it."""

    order_id: uuid.UUID
    user_id: str
    items: Annotated[list[OrderLine], Field(min_length=1)]
    total_price: Decimal
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    # A factory, not OrderContact(): no model is built at import (shared.model); the schema still shows the default.
    contact: OrderContact = Field(default_factory=OrderContact,
                                  json_schema_extra={"default": {"email": None, "phone": None}})


class NotificationPublic(Model):
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


class NotificationPage(Model):
    items: list[NotificationPublic]
    total: int
    limit: int
    offset: int


class NotificationQuery(Model):
    model_config = ConfigDict(extra="forbid")

    order_id: uuid.UUID | None = None
    recipient: text(1, 320) | None = None
    status: Status | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=100_000)] = 0


class Accepted(Model):
    id: str
    status: Status


class DeadLetterEntry(Model):
    """An event the broker gave up on, whole: its attributes and data, and what replaying it did."""

    id: str
    source: str
    event_id: str
    type: str
    subject: str | None
    specversion: str
    attributes: dict[str, Any]  # every other attribute: time, datacontenttype, extensions (knativeerrorcode, ...)
    data: Any  # the JSON data, or null when it was not JSON (then in data_base64)
    data_base64: str | None
    received_at: datetime
    dead_lettered: int  # how many times the sink received it (again after a replay that failed the same way)
    last_dead_lettered_at: datetime
    replayed_at: datetime | None
    replays: int
    last_replay_error: str | None

    @classmethod
    def from_row(cls, row: dict) -> DeadLetterEntry:
        return cls.model_validate(row | {"id": str(row["id"])})


class DeadLetterPage(Model):
    items: list[DeadLetterEntry]
    total: int
    limit: int
    offset: int


class DeadLetterQuery(Model):
    model_config = ConfigDict(extra="forbid")

    type: text(1, 200) | None = None
    replayed: QueryFlag | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=100_000)] = 0


class Alert(Model):
    """One alert of an Alertmanager webhook notification."""

    model_config = ConfigDict(populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""


class AlertGroup(Model):
    """Alertmanager's webhook payload (version 4): one notification of one group of alerts.

    Unknown fields are ignored, not refused: a newer Alertmanager may add some, and a refusal would lose the alert.
    """

    model_config = ConfigDict(populate_by_name=True)

    version: str
    group_key: Annotated[str, StringConstraints(min_length=1, max_length=4000)] = Field(alias="groupKey")
    truncated_alerts: Annotated[int, Field(ge=0)] = Field(default=0, alias="truncatedAlerts")
    status: Literal["firing", "resolved"]
    receiver: str
    group_labels: dict[str, str] = Field(default={}, alias="groupLabels")
    common_labels: dict[str, str] = Field(default={}, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default={}, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: Annotated[list[Alert], Field(min_length=1, max_length=200)]


class AlertRecipient(Model):
    """Who gets a group's e-mail: set per receiver in the Alertmanager configuration (`?to=`)."""

    model_config = ConfigDict(extra="forbid")

    to: Email
