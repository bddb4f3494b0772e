"""The transactional outbox: rows written with the state change they announce, delivered after commit.

Destinations: `sink` (CloudEvents for K_SINK), `release-stock` (give a failed order's stock back to the catalog),
`cart` (take a paid order's quantities out of the cart). Every destination is idempotent by the row's subject
(the order id), so delivery is at-least-once and a row is marked sent only after its destination took it.
The creating function tries each row once right away; the relay delivers whatever is still due, with capped
exponential backoff, and after the maximum attempts the row is `dead`: counted, alerted on, listed and re-queued
by an admin endpoint.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter

from shared import events, peers
from shared.errors import Problem
from shared.event_types import ORDER_CREATED
from shared.logs import logger
from shared.postgres import Connection, in_connection
from shared.settings import CheckoutSettings, PeerSettings, settings

DELIVERIES = Counter("shop_outbox_deliveries", "Outbox rows handed to their destination, by outcome",
                     ["destination", "outcome"])
LEASE_SECONDS = 30
_log = logger("outbox")


@dataclass(frozen=True)
class OutboxRow:
    id: uuid.UUID
    destination: str
    event_type: str
    source: str
    subject: str
    data: dict
    created_at: datetime
    attempts: int


_COLUMNS = "id, destination, event_type, source, subject, data, created_at, attempts"
ENTRY_COLUMNS = _COLUMNS + ", sent_at, dead_at, next_attempt_at, last_error"
_ENTRY_FIELDS = [name.strip() for name in ENTRY_COLUMNS.split(",")]


def add(db: Connection, destination: str, event_type: str, source: str, subject: str, data: dict) -> OutboxRow:
    first_retry = settings(CheckoutSettings).outbox_first_retry_seconds
    rows = db.run(f"INSERT INTO outbox (id, destination, event_type, source, subject, data, next_attempt_at) "
                  f"VALUES (:id, :destination, :type, :source, :subject, CAST(:data AS jsonb), "
                  f"now() + make_interval(secs => :first_retry)) RETURNING {_COLUMNS}",
                  id=uuid.uuid4(), destination=destination, type=event_type, source=source, subject=subject,
                  data=json.dumps(data, default=str), first_retry=first_retry)
    return OutboxRow(*rows[0])


def add_release(db: Connection, order_id: uuid.UUID) -> OutboxRow:
    return add(db, "release-stock", "release-stock", "/orders", str(order_id), {"order_id": str(order_id)})


def claim_due(db: Connection, limit: int) -> list[OutboxRow]:
    """Lease the rows that are due, so concurrent relays never deliver the same row at the same time."""
    rows = db.run(f"UPDATE outbox SET next_attempt_at = now() + make_interval(secs => {LEASE_SECONDS}) "
                  "WHERE id IN (SELECT id FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL "
                  "AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED) "
                  f"RETURNING {_COLUMNS}", limit=limit)
    return [OutboxRow(*row) for row in rows]


def backlog(db: Connection) -> tuple[int, float, int]:
    """How many rows are pending, the age in seconds of the oldest, and how many are dead."""
    count, oldest, dead = db.run(
        "SELECT count(*) FILTER (WHERE dead_at IS NULL), "
        "COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE dead_at IS NULL)), 0), "
        "count(*) FILTER (WHERE dead_at IS NOT NULL) FROM outbox WHERE sent_at IS NULL")[0]
    return count, float(oldest), dead


def entries(db: Connection, state: str, limit: int, offset: int) -> tuple[list[dict], int]:
    condition = {"dead": "sent_at IS NULL AND dead_at IS NOT NULL", "pending": "sent_at IS NULL AND dead_at IS NULL",
                 "sent": "sent_at IS NOT NULL"}[state]
    total = db.run(f"SELECT count(*) FROM outbox WHERE {condition}")[0][0]
    rows = db.run(f"SELECT {ENTRY_COLUMNS} FROM outbox WHERE {condition} ORDER BY created_at DESC, id DESC "
                  "LIMIT :limit OFFSET :offset", limit=limit, offset=offset)
    return [dict(zip(_ENTRY_FIELDS, row)) for row in rows], total


def requeue(db: Connection, row_id: uuid.UUID) -> dict | None:
    """A dead row becomes due now with a fresh attempt budget; None when no dead row has this id."""
    rows = db.run(f"UPDATE outbox SET dead_at = NULL, attempts = 0, next_attempt_at = now() "
                  f"WHERE id = :id AND dead_at IS NOT NULL AND sent_at IS NULL RETURNING {ENTRY_COLUMNS}", id=row_id)
    return dict(zip(_ENTRY_FIELDS, rows[0])) if rows else None


async def deliver(row: OutboxRow) -> bool:
    """Hand one row to its destination and record the outcome; True when delivered."""
    try:
        await _send(row)
    except Problem as failure:
        error = failure.detail
        dead = await in_connection(lambda db: _failed(db, row, error))
        DELIVERIES.labels(row.destination, "dead" if dead else "failed").inc()
        _log.warning("outbox delivery failed", extra={"outbox_id": str(row.id), "destination": row.destination,
                                                      "attempts": row.attempts + 1, "dead": dead, "error": error})
        return False
    await in_connection(lambda db: _delivered(db, row))
    DELIVERIES.labels(row.destination, "delivered").inc()
    return True


async def deliver_while_leased(rows: list[OutboxRow], deliver_one=deliver, clock=time.monotonic) -> int:
    """Deliver claimed rows one by one while their lease has room for one more delivery (the slowest a peer may
    take); the rest stay leased until it ends and a later tick takes them, so no two relays deliver a row at once.
    How many were attempted."""
    # A peer call: its timeout, and up to two retries of a failed connection; publishing is one such call.
    slowest = 3 * settings(PeerSettings).peer_timeout_seconds + 1
    last_start = clock() + LEASE_SECONDS - slowest
    for attempted, row in enumerate(rows):
        if attempted and clock() > last_start:  # the first always goes: a long PEER_TIMEOUT_SECONDS must not stall all
            return attempted
        await deliver_one(row)
    return len(rows)


async def _send(row: OutboxRow) -> None:
    if row.destination == "sink":
        await events.publish(str(row.id), row.event_type, row.source, row.subject, row.data, row.created_at)
    elif row.destination == "release-stock":
        # Only 200: the release answers every id (an unknown one gets a tombstone), so a 404 means the call never
        # reached it, and the row must be tried again rather than count as released.
        await peers.call("catalog-release-stock", "DELETE", f"/internal/stock/reservations/{row.subject}")
    else:
        await peers.call("cart-remove-ordered", "POST",
                         f"/internal/cart/{row.data['user_id']}/orders/{row.subject}",
                         json={"lines": row.data["lines"]}, expected=(200,))


def _delivered(db: Connection, row: OutboxRow) -> None:
    if row.event_type == ORDER_CREATED:
        db.run("WITH sent AS (UPDATE outbox SET sent_at = now(), last_error = NULL WHERE id = :id) "
               "UPDATE orders SET status = 'confirmed' WHERE id = CAST(:order_id AS uuid) AND status = 'paid'",
               id=row.id, order_id=row.subject)
    else:
        db.run("UPDATE outbox SET sent_at = now(), last_error = NULL WHERE id = :id", id=row.id)


def _failed(db: Connection, row: OutboxRow, error: str) -> bool:
    """Reschedule with capped exponential backoff (± 20 %); past the maximum attempts the row is dead."""
    config = settings(CheckoutSettings)
    delay = min(config.outbox_max_backoff_seconds, 2 ** (row.attempts + 1)) * random.uniform(0.8, 1.2)
    # attempts + 1 in the statement, not from `row`: a relay that took the row over meanwhile counted too.
    rows = db.run("UPDATE outbox SET attempts = attempts + 1, last_error = :error, "
                  "next_attempt_at = now() + make_interval(secs => :delay), "
                  "dead_at = CASE WHEN attempts + 1 >= CAST(:max AS int) THEN now() END "
                  "WHERE id = :id AND sent_at IS NULL RETURNING dead_at IS NOT NULL",
                  error=error[:500], delay=delay, id=row.id, max=config.outbox_max_attempts)
    return bool(rows and rows[0][0])
