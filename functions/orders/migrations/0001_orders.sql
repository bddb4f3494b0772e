-- Orders, their lines, the allowed status transitions, idempotency keys and the transactional outbox.

CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    user_id          text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'paid', 'confirmed', 'payment_failed', 'cancelled')),
    currency         char(3) NOT NULL,
    total_amount     numeric(14, 2) NOT NULL CHECK (total_amount > 0),
    shipping_address jsonb NOT NULL,
    contact          jsonb NOT NULL DEFAULT '{}',
    card_last4       char(4) NOT NULL CHECK (card_last4 ~ '^[0-9]{4}$'),
    failure_reason   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- A user's history, newest first, stays an index scan at millions of orders.
CREATE INDEX orders_user_history ON orders (user_id, created_at DESC, id DESC);

CREATE TABLE order_lines (
    order_id          uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no           int NOT NULL CHECK (line_no > 0),
    product_sku       text NOT NULL,
    product_name      text NOT NULL,
    quantity          int NOT NULL CHECK (quantity > 0),
    price_at_purchase numeric(12, 2) NOT NULL CHECK (price_at_purchase > 0),
    currency          char(3) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- The status machine lives in the schema too: an UPDATE to a transition not listed here fails.
CREATE TABLE order_status_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO order_status_transitions VALUES
    ('pending', 'paid'), ('pending', 'payment_failed'), ('pending', 'cancelled'),
    ('paid', 'confirmed'), ('paid', 'cancelled');

CREATE FUNCTION enforce_order_transition() RETURNS trigger AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT EXISTS (
        SELECT 1 FROM order_status_transitions WHERE from_status = OLD.status AND to_status = NEW.status
    ) THEN
        RAISE EXCEPTION 'illegal order status transition % -> %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER orders_status_transition BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION enforce_order_transition();

-- One charge per order at most: the primary key makes a second charge impossible.
CREATE TABLE payments (
    order_id   uuid PRIMARY KEY REFERENCES orders (id),
    amount     numeric(14, 2) NOT NULL,
    currency   char(3) NOT NULL,
    card_last4 char(4) NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('approved', 'declined', 'error')),
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Idempotency-Key per user: the first request's fingerprint and, once finished, its response.
CREATE TABLE idempotency_keys (
    user_id         text NOT NULL,
    idempotency_key text NOT NULL,
    request_hash    text NOT NULL,
    order_id        uuid NOT NULL,
    response_status int,
    response_body   jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idempotency_key)
);

-- Transactional outbox: written in the same transaction as the state change it announces.
CREATE TABLE outbox (
    id              uuid PRIMARY KEY,
    destination     text NOT NULL CHECK (destination IN ('sink', 'release-stock')),
    event_type      text NOT NULL,
    source          text NOT NULL,
    subject         text NOT NULL,
    data            jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE sent_at IS NULL;
