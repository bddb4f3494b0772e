"""Sending notifications exactly once per delivery key, with the ledger as the record of every attempt."""

from __future__ import annotations

import uuid

from prometheus_client import Counter
from pydantic import ValidationError

from functions.notify import channels, store, templates
from functions.notify.models import NotificationRequest, OrderCreated
from shared.errors import Problem, Unprocessable, validation_errors
from shared.event_types import ORDER_CREATED
from shared.postgres import Connection, in_transaction

NOTIFICATIONS = Counter("shop_notifications", "Notifications, by channel and outcome", ["channel", "outcome"])


def _deliver(db: Connection, source: str, event_id: str, order_id, channel: str, recipient: str,
             subject: str | None, body: str) -> tuple[uuid.UUID, str | Problem]:
    """Send once per (source, event_id): a delivery already sent is acknowledged without sending again.

    A failure is recorded and returned, not raised, so the record commits before the caller answers 5xx/4xx.
    """
    sender = channels.backend()
    notification_id, status = store.claim(db, source, event_id, order_id, channel, sender.name, recipient, subject,
                                          body)
    if status in ("sent", "rejected"):
        return notification_id, "duplicate"
    try:
        sender.send(channel, recipient, subject, body)
    except (channels.SendFailed, channels.Undeliverable) as failure:
        store.finish(db, notification_id, "failed" if isinstance(failure, channels.SendFailed) else "rejected",
                     failure.detail)
        return notification_id, failure
    store.finish(db, notification_id, "sent")
    return notification_id, "sent"


async def deliver(source: str, event_id: str, order_id, channel: str, recipient: str, subject: str | None,
                  body: str) -> tuple[uuid.UUID, str]:
    notification_id, outcome = await in_transaction(
        lambda db: _deliver(db, source, event_id, order_id, channel, recipient, subject, body))
    NOTIFICATIONS.labels(channel, outcome if isinstance(outcome, str) else outcome.slug).inc()
    if isinstance(outcome, Problem):
        outcome.extensions["notification_id"] = str(notification_id)
        raise outcome
    return notification_id, outcome


async def on_order_created(event) -> str:
    """Confirm an order to its user; a malformed event is rejected (4xx) so it is dead-lettered, not retried."""
    if event["type"] != ORDER_CREATED:
        await _reject(event, f"unexpected event type {event['type']}")
    try:
        order = OrderCreated.model_validate(event.data if isinstance(event.data, dict) else {})
    except ValidationError as invalid:
        await _reject(event, "invalid order-created data", validation_errors(invalid.errors(include_url=False), "data"))
    channel, recipient = _reach(order)
    subject, body = templates.order_confirmation(order)
    _, outcome = await deliver(event["source"], event["id"], order.order_id, channel, recipient, subject, body)
    return outcome


async def send_requested(request: NotificationRequest) -> uuid.UUID:
    subject, body = request.subject, request.body
    if request.template_id:
        template_subject, template_body = templates.render(request.template_id, request.context)
        subject, body = subject or template_subject, body or template_body
    reference = str(uuid.uuid4())
    notification_id, _ = await deliver("/notifications", reference, None, request.type, request.recipient,
                                       subject if request.type == "email" else None, body)
    return notification_id


def _reach(order: OrderCreated) -> tuple[str, str]:
    if order.contact.email:
        return "email", order.contact.email
    if order.contact.phone:
        return "sms", order.contact.phone
    return "log", f"user:{order.user_id}"


async def _reject(event, reason: str, errors: list[dict] | None = None):
    await in_transaction(lambda db: store.reject(db, event["source"], event["id"], reason))
    NOTIFICATIONS.labels("none", "rejected").inc()
    raise Unprocessable(f"Event {event['id']} rejected: {reason}", errors=errors)
