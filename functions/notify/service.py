"""Notifications sent at least once per delivery key (a CloudEvent's source + id), deduplicated by the ledger.

A delivery is three steps, and the message is never sent inside a transaction:
1. claim, one transaction: the ledger row becomes `sending` (attempts + 1) and commits. A row already `sent` or
   `rejected` is a duplicate: acknowledged, nothing sent. A row another delivery claimed less than a lease ago is
   in flight: 503, and the broker retries later;
2. send, holding no transaction and no lock;
3. record, one transaction: `sent`; or `failed` (transient: 5xx, the broker retries) or `rejected` (4xx: the broker
   dead-letters the event).
An instance that dies between 2 and 3 leaves the row `sending`; the first delivery after the lease sends again.
So a crash between send and record can repeat one message; nothing else does: a `sent` the database would not take
is tried again for a few seconds, and if it still fails the delivery is answered as sent all the same (the row
stays `sending`, logged) rather than failed, which would have the broker redeliver and the message go out twice.

Dead letters (events the broker gave up on) are stored whole and can be replayed to the broker with their original
id, so the ledger still dedupes them: replaying an event already notified sends nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import uuid
from datetime import datetime
from typing import Any, Awaitable, Callable

from prometheus_client import Counter
from pydantic import ValidationError

from functions.notify import channels, store, templates
from functions.notify.models import AlertGroup, NotificationRequest, OrderCreated
from functions.notify.settings import DeliverySettings
from shared.errors import Conflict, IdempotencyKeyReused, NotFound, ServiceUnavailable, Unprocessable, validation_errors
from shared.event_types import ORDER_CREATED
from shared.faults import fault_point
from shared.logs import logger
from shared.postgres import in_transaction
from shared.settings import settings

_log = logger("notify")
RECORD_SENT_PAUSES = (0.2, 0.5, 1.0, 0)  # four tries over ~2 s, plus their database timeouts
NOTIFICATIONS = Counter("shop_notifications", "Notifications, by channel and outcome", ["channel", "outcome"])
REPLAYS = Counter("shop_dead_letter_replays", "Dead letters sent to the broker again, by outcome", ["outcome"])
_NAMED_ATTRIBUTES = ("specversion", "id", "source", "type", "subject")
ALERTS_SOURCE = "/internal/alerts"
KEYED_SOURCE = "/notifications/keyed"  # the ledger source of admins' sends made with an Idempotency-Key
Publish = Callable[..., Awaitable[None]]


async def deliver(source: str, event_id: str, order_id, channel: str, recipient: str, subject: str | None,
                  body: str, keyed: bool = False) -> tuple[uuid.UUID, str]:
    """Send unless this (source, event_id) was sent already; (ledger id, `sent` or `duplicate`).

    `keyed`: the delivery is named by a client's Idempotency-Key, so the key with another message is refused (422)
    and a repeat of one the channel refused is refused again, as the first request was."""
    sender = channels.backend()
    lease = settings(DeliverySettings).notify_send_lease_seconds
    claimed = await in_transaction(lambda db: store.claim(
        db, source, event_id, order_id, channel, sender.name, recipient, subject, body, lease, same_message=keyed))
    notification_id, claim, attempt = claimed.notification_id, claimed.outcome, claimed.attempt
    if claim == "key-reused":
        raise IdempotencyKeyReused("another notification")
    if claim == "duplicate" and keyed and claimed.status == "rejected":
        raise channels.Undeliverable(claimed.last_error or "The channel refused this message",
                                     extensions={"notification_id": str(notification_id)})
    if claim == "duplicate":
        NOTIFICATIONS.labels(channel, "duplicate").inc()
        return notification_id, "duplicate"
    if claim == "in-flight":
        NOTIFICATIONS.labels(channel, "in-flight").inc()
        raise ServiceUnavailable(f"Notification {notification_id} is being sent by another delivery",
                                 retry_after=math.ceil(lease))
    try:
        await asyncio.to_thread(sender.send, channel, recipient, subject, body)
    except (channels.SendFailed, channels.Undeliverable) as failure:
        status, detail = "failed" if isinstance(failure, channels.SendFailed) else "rejected", failure.detail
        await in_transaction(lambda db: store.finish(db, notification_id, attempt, status, detail))
        NOTIFICATIONS.labels(channel, failure.slug).inc()
        failure.extensions["notification_id"] = str(notification_id)
        raise
    await fault_point("notify.after-send")
    await _record_sent(notification_id, attempt)
    NOTIFICATIONS.labels(channel, "sent").inc()
    return notification_id, "sent"


async def _record_sent(notification_id: uuid.UUID, attempt: int) -> None:
    """Record a send that went out: retried over a database blip; never raised, so the sender is told it was sent."""
    for pause in RECORD_SENT_PAUSES:
        try:
            await in_transaction(lambda db: store.finish(db, notification_id, attempt, "sent"))
            return
        except Exception as error:  # noqa: BLE001 - it went out: failing now would have it sent again
            failure = error
        await asyncio.sleep(pause)
    _log.error("notification sent but not recorded; its row stays `sending`",
               extra={"notification_id": str(notification_id), "error": repr(failure)})


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


async def send_requested(request: NotificationRequest, idempotency_key: str | None = None) -> tuple[uuid.UUID, bool]:
    """Send an admin's message now: its ledger id, and whether an earlier request with this key (the sending admin's
    id and the Idempotency-Key) sent it already (then nothing is sent)."""
    subject, body = request.subject, request.body
    if request.template_id:
        template_subject, template_body = templates.render(request.template_id, request.context)
        subject, body = subject or template_subject, body or template_body
    # A keyed send has a source of its own: no event's (source, id) can name the same ledger row.
    source, reference = ("/notifications", str(uuid.uuid4())) if idempotency_key is None else \
        (KEYED_SOURCE, idempotency_key)
    notification_id, outcome = await deliver(source, reference, None, request.type, request.recipient,
                                             subject if request.type == "email" else None, body,
                                             keyed=idempotency_key is not None)
    return notification_id, outcome == "duplicate"


async def send_alert_group(group: AlertGroup, recipient: str) -> uuid.UUID:
    """E-mail one Alertmanager notification group, once: Alertmanager retrying or repeating the same group (same
    status, same alerts since the same moments) finds it in the ledger and sends nothing."""
    # PostgreSQL text cannot hold NUL, and refusing the group would lose the alert (Alertmanager drops a 4xx).
    subject, body = (text.replace("\x00", "\ufffd") for text in templates.alert_group(group))
    notification_id, _ = await deliver(ALERTS_SOURCE, alert_delivery_key(group, recipient), None, "email", recipient,
                                       subject, body)
    return notification_id


def alert_delivery_key(group: AlertGroup, recipient: str) -> str:
    """The ledger key of a group's e-mail to `recipient` (another recipient gets the same group too): its group key,
    status, and each alert's fingerprint, status and start."""
    alerts = sorted((alert.fingerprint or json.dumps(alert.labels, sort_keys=True), alert.status,
                     alert.starts_at.isoformat()) for alert in group.alerts)
    identity = json.dumps([recipient, group.group_key, group.status, alerts])
    return "alertmanager:" + hashlib.sha256(identity.encode()).hexdigest()


async def keep_dead_letter(event) -> uuid.UUID:
    """Store an event the broker gave up on, once per (source, id), with all its attributes and data."""
    attributes = dict(event.get_attributes())
    letter = {name: attributes.pop(name, None) for name in _NAMED_ATTRIBUTES}
    data, data_base64 = _storable(event.data)
    letter |= {"event_id": letter.pop("id"), "attributes": attributes, "data": data, "data_base64": data_base64}
    return await in_transaction(lambda db: store.keep_dead_letter(db, letter))


def _storable(data) -> tuple[Any, str | None]:
    """(data, None) for JSON data, else (None, base64): bytes, and JSON that jsonb refuses (NaN, NUL characters)."""
    if not isinstance(data, (bytes, bytearray)):
        try:
            if "\\u0000" not in json.dumps(data, allow_nan=False):
                return data, None
        except ValueError:
            pass
        data = json.dumps(data).encode()
    return None, base64.b64encode(data).decode()


async def replay_dead_letter(dead_letter_id: uuid.UUID, publish: Publish) -> dict:
    """Send a dead letter to the broker again, as it was (same id, source, type, subject, data); its row after."""
    letter = await in_transaction(lambda db: store.dead_letter(db, dead_letter_id))
    if letter is None:
        raise NotFound(f"No dead letter '{dead_letter_id}'")
    if letter["data_base64"] is not None:
        raise Conflict("This event's data is not JSON: the publisher can only send JSON data")
    try:
        await publish(letter["event_id"], letter["type"], letter["source"], letter["subject"], letter["data"],
                      _event_time(letter))
    except ServiceUnavailable as failure:
        detail = failure.detail
        await in_transaction(lambda db: store.replay_failed(db, dead_letter_id, detail))
        REPLAYS.labels("failed").inc()
        raise
    REPLAYS.labels("replayed").inc()
    return await in_transaction(lambda db: store.replayed(db, dead_letter_id))


def _event_time(letter: dict) -> datetime:
    try:
        return datetime.fromisoformat(letter["attributes"]["time"])
    except (KeyError, TypeError, ValueError):
        return letter["received_at"]


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
