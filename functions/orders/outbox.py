"""The transactional outbox: rows written with the state change they announce, delivered after commit.

`sink` rows are CloudEvents for K_SINK; `release-stock` rows give a failed order's stock back to the catalog.
The creating function tries each row once right away; the relay delivers whatever is still due, with backoff.
Delivery is at-least-once: a row is marked sent only after its destination took it.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter

from shared import events, peers
from shared.errors import Problem
from shared.event_types import ORDER_CREATED
from shared.logs import logger
from shared.postgres import Connection, in_transaction

DELIVERIES = Counter("shop_outbox_deliveries", "Outbox rows handed to their destination, by outcome",
                     ["destination", "outcome"])
FIRST_RETRY_SECONDS = 10  # the creating function's own attempt has this long before the relay steps in
MAX_BACKOFF_SECONDS = 300
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


def add(db: Connection, destination: str, event_type: str, source: str, subject: str, data: dict) -> OutboxRow:
    rows = db.run(f"INSERT INTO outbox (id, destination, event_type, source, subject, data, next_attempt_at) "
                  f"VALUES (:id, :destination, :type, :source, :subject, CAST(:data AS jsonb), "
                  f"now() + make_interval(secs => {FIRST_RETRY_SECONDS})) RETURNING {_COLUMNS}",
                  id=uuid.uuid4(), destination=destination, type=event_type, source=source, subject=subject,
                  data=json.dumps(data, default=str))
    return OutboxRow(*rows[0])


def claim_due(db: Connection, limit: int) -> list[OutboxRow]:
    """Lease the rows that are due, so concurrent relays never deliver the same row at the same time."""
    rows = db.run(f"UPDATE outbox SET next_attempt_at = now() + make_interval(secs => {LEASE_SECONDS}) "
                  "WHERE id IN (SELECT id FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= now() "
                  "ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED) "
                  f"RETURNING {_COLUMNS}", limit=limit)
    return [OutboxRow(*row) for row in rows]


def backlog(db: Connection) -> tuple[int, float]:
    """How many rows are pending, and the age in seconds of the oldest."""
    count, oldest = db.run("SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) "
                           "FROM outbox WHERE sent_at IS NULL")[0]
    return count, float(oldest)


async def deliver(row: OutboxRow) -> bool:
    """Hand one row to its destination and record the outcome; True when delivered."""
    try:
        if row.destination == "sink":
            await events.publish(str(row.id), row.event_type, row.source, row.subject, row.data, row.created_at)
        else:
            # 404: there is no reservation to give back (nothing was taken), which is as good as released.
            await peers.call("catalog-release-stock", "DELETE", f"/internal/stock/reservations/{row.subject}",
                             expected=(200, 404))
    except Problem as failure:
        error = failure.detail
        await in_transaction(lambda db: _failed(db, row, error))
        DELIVERIES.labels(row.destination, "failed").inc()
        _log.warning("outbox delivery failed", extra={"outbox_id": str(row.id), "destination": row.destination,
                                                      "attempts": row.attempts + 1, "error": error})
        return False
    await in_transaction(lambda db: _delivered(db, row))
    DELIVERIES.labels(row.destination, "delivered").inc()
    return True


def _delivered(db: Connection, row: OutboxRow) -> None:
    db.run("UPDATE outbox SET sent_at = now(), last_error = NULL WHERE id = :id", id=row.id)
    if row.event_type == ORDER_CREATED:
        db.run("UPDATE orders SET status = 'confirmed' WHERE id = CAST(:id AS uuid) AND status = 'paid'",
               id=row.subject)


def _failed(db: Connection, row: OutboxRow, error: str) -> None:
    attempts = row.attempts + 1
    delay = min(MAX_BACKOFF_SECONDS, 2 ** attempts) * random.uniform(0.8, 1.2)
    db.run("UPDATE outbox SET attempts = :attempts, last_error = :error, "
           "next_attempt_at = now() + make_interval(secs => :delay) WHERE id = :id AND sent_at IS NULL",
           attempts=attempts, error=error[:500], delay=delay, id=row.id)


ABANDONED_AFTER_SECONDS = 300


def cancel_abandoned(db: Connection) -> list[OutboxRow]:
    """Orders left `pending` (their function died mid-way) are cancelled and their stock queued for release."""
    abandoned = db.run("UPDATE orders SET status = 'cancelled', failure_reason = 'abandoned' WHERE status = 'pending' "
                       f"AND created_at < now() - make_interval(secs => {ABANDONED_AFTER_SECONDS}) RETURNING id")
    return [add(db, "release-stock", "release-stock", "/orders", str(order_id), {"order_id": str(order_id)})
            for (order_id,) in abandoned]
