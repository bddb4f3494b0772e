-- A delivery is claimed as 'sending' (committed) before the message goes out, and recorded 'sent' after it.
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'rejected'));

-- Events the broker gave up on, kept whole so an admin can replay them: one row per CloudEvent (source + id).
CREATE TABLE dead_letters (
    id                    uuid PRIMARY KEY,
    source                text NOT NULL,
    event_id              text NOT NULL,
    type                  text NOT NULL,
    subject               text,
    specversion           text NOT NULL,
    attributes            jsonb NOT NULL DEFAULT '{}',  -- every other attribute: time, datacontenttype, extensions
    data                  jsonb,                        -- the data when it is JSON ...
    data_base64           text,                         -- ... else its bytes
    received_at           timestamptz NOT NULL DEFAULT now(),
    dead_lettered         int NOT NULL DEFAULT 1,       -- how many times the sink received it (again after a replay)
    last_dead_lettered_at timestamptz NOT NULL DEFAULT now(),
    replayed_at           timestamptz,
    replays               int NOT NULL DEFAULT 0,
    last_replay_error     text,
    UNIQUE (source, event_id)
);
CREATE INDEX dead_letters_received ON dead_letters (received_at DESC, id DESC);
CREATE INDEX dead_letters_type ON dead_letters (type, received_at DESC);
