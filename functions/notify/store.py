"""Notify's PostgreSQL tables: the `notifications` ledger (one row per event source + id, or API request) and the
`dead_letters` the broker gave up on (one row per event source + id)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from shared.postgres import Connection


@dataclass(frozen=True)
class Claim:
    notification_id: uuid.UUID
    outcome: str
    attempt: int
    status: str | None = None  # a duplicate's: `sent` or `rejected`
    last_error: str | None = None


COLUMNS = ("id, source, event_id, order_id, channel, backend, recipient, subject, status, attempts, last_error, "
           "created_at, updated_at")
DEAD_LETTER_COLUMNS = ("id, source, event_id, type, subject, specversion, attributes, data, data_base64, received_at, "
                       "dead_lettered, last_dead_lettered_at, replayed_at, replays, last_replay_error")


def claim(db: Connection, source: str, event_id: str, order_id, channel, backend: str, recipient: str,
          subject: str | None, body: str, lease_seconds: float, same_message: bool = False) -> Claim:
    """Mark this delivery 'sending' (attempts + 1), unless it is done or another instance is sending it.

    The outcome: `claimed` (send it now), `duplicate` (already sent or rejected), `in-flight` (claimed less than
    `lease_seconds` ago), or, with `same_message` (an Idempotency-Key names the delivery), `key-reused` when the
    row holds another message. Commit before sending: the lock ends with the claim.
    """
    claimed = db.run(
        "INSERT INTO notifications (id, source, event_id, order_id, channel, backend, recipient, subject, body, "
        "status, attempts) VALUES (:id, :source, :event_id, :order_id, :channel, :backend, :recipient, :subject, "
        ":body, 'sending', 1) ON CONFLICT (source, event_id) DO UPDATE SET status = 'sending', "
        "attempts = notifications.attempts + 1, backend = EXCLUDED.backend, last_error = NULL, updated_at = now() "
        "WHERE notifications.status NOT IN ('sent', 'rejected') AND NOT (notifications.status = 'sending' "
        "AND notifications.updated_at > now() - :lease * interval '1 second') AND (NOT CAST(:same AS boolean) OR "
        "(notifications.channel, notifications.recipient, notifications.subject, notifications.body) "
        "IS NOT DISTINCT FROM (EXCLUDED.channel, EXCLUDED.recipient, EXCLUDED.subject, EXCLUDED.body)) "
        "RETURNING id, attempts",
        id=uuid.uuid4(), source=source, event_id=event_id, order_id=order_id, channel=channel, backend=backend,
        recipient=recipient, subject=subject, body=body, lease=lease_seconds, same=same_message)
    if claimed:
        [(notification_id, attempt)] = claimed
        return Claim(notification_id, "claimed", attempt)
    [(notification_id, status, attempt, last_error, *message)] = db.run(
        "SELECT id, status, attempts, last_error, channel, recipient, subject, body FROM notifications "
        "WHERE source = :source AND event_id = :event_id", source=source, event_id=event_id)
    if same_message and message != [channel, recipient, subject, body]:
        return Claim(notification_id, "key-reused", attempt)
    if status in ("sent", "rejected"):
        return Claim(notification_id, "duplicate", attempt, status, last_error)
    return Claim(notification_id, "in-flight", attempt)


def finish(db: Connection, notification_id: uuid.UUID, attempt: int, status: str, error: str | None = None) -> None:
    """Record how a claimed send ended. A message that went out is `sent` whatever happened to the row meanwhile;
    a failure is only recorded while the row is still this attempt's (a later claim may have sent it since)."""
    db.run("UPDATE notifications SET status = :status, last_error = :error, updated_at = now() WHERE id = :id "
           "AND (:status = 'sent' OR (status = 'sending' AND attempts = :attempt))",
           status=status, error=error, id=notification_id, attempt=attempt)


def reject(db: Connection, source: str, event_id: str, error: str) -> None:
    """Keep a trace of an event that can never be delivered (it also goes to the dead-letter sink)."""
    db.run("INSERT INTO notifications (id, source, event_id, recipient, body, status, attempts, last_error) "
           "VALUES (:id, :source, :event_id, '', '', 'rejected', 1, :error) ON CONFLICT (source, event_id) DO "
           "UPDATE SET status = 'rejected', last_error = :error, updated_at = now() WHERE notifications.status <> 'sent'",
           id=uuid.uuid4(), source=source, event_id=event_id, error=error[:500])


def search(db: Connection, order_id, recipient: str | None, status: str | None, limit: int, offset: int):
    conditions, params = [], {}
    for column, value in (("order_id", order_id), ("recipient", recipient), ("status", status)):
        if value is not None:
            conditions.append(f"{column} = :{column}")
            params[column] = value
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    total = db.run(f"SELECT count(*) FROM notifications {where}", **params)[0][0]
    rows = db.run(f"SELECT {COLUMNS} FROM notifications {where} ORDER BY created_at DESC, id DESC "
                  "LIMIT :limit OFFSET :offset", limit=limit, offset=offset, **params)
    return _dicts(COLUMNS, rows), total


def keep_dead_letter(db: Connection, letter: dict) -> uuid.UUID:
    """Store a dead-lettered event once per (source, event_id); receiving it again only counts it."""
    [(dead_letter_id,)] = db.run(
        "INSERT INTO dead_letters (id, source, event_id, type, subject, specversion, attributes, data, data_base64) "
        "VALUES (:id, :source, :event_id, :type, :subject, :specversion, CAST(:attributes AS jsonb), "
        "CAST(:data AS jsonb), :data_base64) ON CONFLICT (source, event_id) DO UPDATE SET "
        "dead_lettered = dead_letters.dead_lettered + 1, last_dead_lettered_at = now() RETURNING id",
        id=uuid.uuid4(), source=letter["source"], event_id=letter["event_id"], type=letter["type"],
        subject=letter["subject"], specversion=letter["specversion"], attributes=json.dumps(letter["attributes"]),
        data=None if letter["data"] is None else json.dumps(letter["data"]), data_base64=letter["data_base64"])
    return dead_letter_id


def dead_letter(db: Connection, dead_letter_id: uuid.UUID) -> dict | None:
    rows = db.run(f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = :id", id=dead_letter_id)
    return _dicts(DEAD_LETTER_COLUMNS, rows)[0] if rows else None


def search_dead_letters(db: Connection, event_type: str | None, replayed: bool | None, limit: int, offset: int):
    conditions, params = [], {}
    if event_type is not None:
        conditions.append("type = :type")
        params["type"] = event_type
    if replayed is not None:
        conditions.append("replays > 0" if replayed else "replays = 0")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    total = db.run(f"SELECT count(*) FROM dead_letters {where}", **params)[0][0]
    rows = db.run(f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters {where} ORDER BY received_at DESC, id DESC "
                  "LIMIT :limit OFFSET :offset", limit=limit, offset=offset, **params)
    return _dicts(DEAD_LETTER_COLUMNS, rows), total


def replayed(db: Connection, dead_letter_id: uuid.UUID) -> dict:
    rows = db.run(f"UPDATE dead_letters SET replayed_at = now(), replays = replays + 1, last_replay_error = NULL "
                  f"WHERE id = :id RETURNING {DEAD_LETTER_COLUMNS}", id=dead_letter_id)
    return _dicts(DEAD_LETTER_COLUMNS, rows)[0]


def replay_failed(db: Connection, dead_letter_id: uuid.UUID, error: str) -> None:
    db.run("UPDATE dead_letters SET last_replay_error = :error WHERE id = :id", error=error[:500], id=dead_letter_id)


def _dicts(columns: str, rows) -> list[dict]:
    names = [name.strip() for name in columns.split(",")]
    return [dict(zip(names, row)) for row in rows]
