"""The notifications ledger (PostgreSQL): one row per event (source + id) or API request."""

from __future__ import annotations

import uuid

from shared.postgres import Connection

COLUMNS = ("id, source, event_id, order_id, channel, backend, recipient, subject, status, attempts, last_error, "
           "created_at, updated_at")


def claim(db: Connection, source: str, event_id: str, order_id, channel, backend: str, recipient: str,
          subject: str | None, body: str) -> tuple[uuid.UUID, str]:
    """Record this delivery once and lock its row: concurrent duplicates wait here and then see it sent."""
    db.run("INSERT INTO notifications (id, source, event_id, order_id, channel, backend, recipient, subject, body, "
           "status) VALUES (:id, :source, :event_id, :order_id, :channel, :backend, :recipient, :subject, :body, "
           "'pending') ON CONFLICT (source, event_id) DO NOTHING", id=uuid.uuid4(), source=source, event_id=event_id,
           order_id=order_id, channel=channel, backend=backend, recipient=recipient, subject=subject, body=body)
    [(notification_id, status)] = db.run("SELECT id, status FROM notifications WHERE source = :source AND "
                                         "event_id = :event_id FOR UPDATE", source=source, event_id=event_id)
    return notification_id, status


def finish(db: Connection, notification_id: uuid.UUID, status: str, error: str | None = None) -> None:
    db.run("UPDATE notifications SET status = :status, attempts = attempts + 1, last_error = :error, "
           "updated_at = now() WHERE id = :id", status=status, error=error, id=notification_id)


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
    columns = [name.strip() for name in COLUMNS.split(",")]
    return [dict(zip(columns, row)) for row in rows], total
