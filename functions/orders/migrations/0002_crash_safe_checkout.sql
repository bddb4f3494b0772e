-- Crash-safe checkout: the order's intent is recorded before any side effect, keys carry a lease, the outbox has a
-- dead state, refunds are recorded, and the simulated card processor keeps its own ledger (one charge per order).

-- A pending order exists from the moment its key is claimed; its lines, currency and total come with the reservation.
ALTER TABLE orders ALTER COLUMN currency DROP NOT NULL, ALTER COLUMN total_amount DROP NOT NULL,
    ADD COLUMN requested_lines jsonb,           -- [{"sku", "quantity"}]: what to reserve, fixed at the first attempt
    ADD COLUMN from_cart boolean NOT NULL DEFAULT false,
    ADD COLUMN refunded_at timestamptz;          -- set when an approved charge was given back

ALTER TABLE payments ADD COLUMN refunded_at timestamptz;

-- The request working on a key holds it until locked_until; after that a retry or the sweep may take it over.
ALTER TABLE idempotency_keys
    ADD COLUMN locked_until timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN lease_token uuid,                 -- which request holds the lease: only it may give it back early
    ADD COLUMN recovery_point text NOT NULL DEFAULT 'finished' CHECK (recovery_point IN ('started', 'finished'));
ALTER TABLE idempotency_keys ALTER COLUMN recovery_point SET DEFAULT 'started';
CREATE INDEX idempotency_unfinished ON idempotency_keys (locked_until) WHERE recovery_point = 'started';

ALTER TABLE outbox DROP CONSTRAINT outbox_destination_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_destination_check CHECK (destination IN ('sink', 'release-stock', 'cart')),
    ADD COLUMN dead_at timestamptz;              -- gave up after the maximum attempts; an admin may re-queue it
DROP INDEX outbox_pending;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_dead ON outbox (dead_at) WHERE dead_at IS NOT NULL AND sent_at IS NULL;

-- The simulated processor's side: one decision per order id, so a retried charge never charges twice, and a
-- 'voided' row (written by the sweep when it gives up an order) refuses any charge that arrives later.
CREATE TABLE processor_charges (
    order_id    uuid PRIMARY KEY,
    amount      numeric(14, 2),
    currency    char(3),
    outcome     text NOT NULL CHECK (outcome IN ('approved', 'declined', 'error', 'voided')),
    reason      text,
    refunded_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
