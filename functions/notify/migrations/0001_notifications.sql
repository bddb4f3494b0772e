-- The notification ledger: one row per delivered event (source + id) or API request; it dedupes deliveries.

CREATE TABLE notifications (
    id         uuid PRIMARY KEY,
    source     text NOT NULL,
    event_id   text NOT NULL,
    order_id   uuid,
    channel    text CHECK (channel IN ('email', 'sms', 'log')),  -- log: no contact known, logged only
    backend    text,
    recipient  text NOT NULL DEFAULT '',
    subject    text,
    body       text NOT NULL DEFAULT '',
    status     text NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'rejected')),
    attempts   int NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, event_id)
);
CREATE INDEX notifications_order ON notifications (order_id, created_at DESC);
CREATE INDEX notifications_recipient ON notifications (recipient, created_at DESC);
