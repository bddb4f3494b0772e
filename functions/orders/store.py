"""PostgreSQL queries of the orders domain (pg8000, synchronous: called inside `in_transaction`/`in_connection`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal

from shared.catalog_contract import ReservedLine
from shared.event_types import ORDER_CREATED
from shared.postgres import Connection

ORDER_COLUMNS = ("id, user_id, status, currency, total_amount, shipping_address, contact, card_last4, "
                 "failure_reason, refunded_at, created_at, updated_at")
_ORDER_FIELDS = [name.strip() for name in ORDER_COLUMNS.split(",")]


@dataclass(frozen=True)
class Claimed:
    """This request holds the key: a new order, or one an earlier request left unfinished."""

    order_id: uuid.UUID
    requested: list[tuple[str, int]] | None  # None: from the cart, not read yet
    resumed: bool
    lease_token: uuid.UUID


@dataclass(frozen=True)
class Finished:
    """The key's request was answered: the same answer again (an order's current state for a success)."""

    order_id: uuid.UUID
    status: int
    body: dict | None


@dataclass(frozen=True)
class Busy:
    """Another request holds the key for this many more seconds."""

    seconds_left: float


@dataclass(frozen=True)
class Mismatch:
    """The key was used for a different request."""


Claim = Claimed | Finished | Busy | Mismatch


@dataclass(frozen=True)
class Unfinished:
    """A key whose request stopped before answering (its instance died), now leased by the sweep."""

    user_id: str
    key: str
    order_id: uuid.UUID
    from_cart: bool
    card_last4: str


# The lease token of a key whose request gave up without an answer: the client's retry may take it over at once,
# while the sweep waits for the lease to run out (a retry of a 503 usually comes within seconds).
RELEASED = uuid.UUID(int=0)


def claim(db: Connection, user_id: str, key: str, request_hash: str, order_id: uuid.UUID, lease: float,
          requested: list[tuple[str, int]] | None, address: dict, contact: dict, card_last4: str) -> Claim:
    """Claim the key and record the pending order in one statement, or take over a key whose lease expired."""
    token = uuid.uuid4()
    created = db.run(
        "WITH k AS (INSERT INTO idempotency_keys (user_id, idempotency_key, request_hash, order_id, locked_until, "
        "lease_token) VALUES (:user_id, :key, :hash, :order_id, now() + make_interval(secs => :lease), :token) "
        "ON CONFLICT DO NOTHING RETURNING order_id) "
        "INSERT INTO orders (id, user_id, shipping_address, contact, card_last4, requested_lines, from_cart) "
        "SELECT order_id, :user_id, CAST(:address AS jsonb), CAST(:contact AS jsonb), :last4, "
        "CAST(:requested AS jsonb), :from_cart FROM k RETURNING id",
        user_id=user_id, key=key, hash=request_hash, order_id=order_id, lease=lease, address=json.dumps(address),
        contact=json.dumps(contact), last4=card_last4, from_cart=requested is None, token=token,
        requested=None if requested is None else json.dumps(_lines_json(requested)))
    if created:
        return Claimed(order_id, requested, resumed=False, lease_token=token)
    taken = db.run(
        "UPDATE idempotency_keys k SET locked_until = now() + make_interval(secs => :lease), lease_token = :token "
        "FROM orders o "
        "WHERE k.user_id = :user_id AND k.idempotency_key = :key AND k.request_hash = :hash "
        "AND k.recovery_point = 'started' AND (k.locked_until < now() OR k.lease_token = :released) "
        "AND o.id = k.order_id RETURNING k.order_id, o.requested_lines", user_id=user_id, key=key,
        hash=request_hash, lease=lease, token=token, released=RELEASED)
    if taken:
        return Claimed(taken[0][0], _lines_from_json(taken[0][1]), resumed=True, lease_token=token)
    rows = db.run("SELECT order_id, request_hash, response_status, response_body, "
                  "EXTRACT(EPOCH FROM locked_until - now()) FROM idempotency_keys "
                  "WHERE user_id = :user_id AND idempotency_key = :key", user_id=user_id, key=key)
    if not rows:  # deleted between the statements (never, today): claim again
        return claim(db, user_id, key, request_hash, order_id, lease, requested, address, contact, card_last4)
    found_order, found_hash, status, body, seconds_left = rows[0]
    if found_hash != request_hash:
        return Mismatch()
    if status is not None:
        return Finished(found_order, status, body)
    return Busy(max(0.0, float(seconds_left)))


def set_requested(db: Connection, order_id: uuid.UUID, lines: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Fix what a cart order buys, once: a resumed request reuses the first attempt's (non-empty) lines."""
    rows = db.run("UPDATE orders SET requested_lines = COALESCE(requested_lines, CAST(:lines AS jsonb)) "
                  "WHERE id = :id RETURNING requested_lines", id=order_id,
                  lines=json.dumps(_lines_json(lines)) if lines else None)
    return _lines_from_json(rows[0][0]) if rows and rows[0][0] else []


def release_lease(db: Connection, user_id: str, key: str, token: uuid.UUID, grace: float) -> None:
    """This request stops working on the key (it failed without an answer): a retry may resume it at once, and
    the sweep leaves it to that retry for `grace` seconds more. Only the lease this request holds: one taken over
    meanwhile belongs to another request."""
    db.run("UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => :grace), lease_token = :released "
           "WHERE user_id = :user_id AND idempotency_key = :key AND recovery_point = 'started' AND lease_token = :token",
           user_id=user_id, key=key, token=token, grace=grace, released=RELEASED)


def take_unfinished(db: Connection, lease: float, limit: int) -> list[Unfinished]:
    """Lease keys whose request died unanswered, so only this sweep resolves them for the next `lease` seconds."""
    rows = db.run(
        "UPDATE idempotency_keys k SET locked_until = now() + make_interval(secs => :lease), lease_token = NULL "
        "FROM orders o WHERE (k.user_id, k.idempotency_key) IN (SELECT user_id, idempotency_key FROM idempotency_keys "
        "  WHERE recovery_point = 'started' AND locked_until < now() ORDER BY locked_until LIMIT :limit "
        "  FOR UPDATE SKIP LOCKED) AND o.id = k.order_id "
        "RETURNING k.user_id, k.idempotency_key, k.order_id, o.from_cart, o.card_last4", lease=lease, limit=limit)
    return [Unfinished(*row) for row in rows]


def answer(db: Connection, user_id: str, key: str, status: int, body: dict | None) -> None:
    """The key's final answer (a success stores no body: replays read the order as it is then); a key answered
    already keeps its first answer."""
    db.run("UPDATE idempotency_keys SET response_status = :status, response_body = CAST(:body AS jsonb), "
           "recovery_point = 'finished' WHERE user_id = :user_id AND idempotency_key = :key "
           "AND response_status IS NULL",
           status=status, body=None if body is None else json.dumps(body, default=str), user_id=user_id, key=key)


def final_answer(db: Connection, user_id: str, key: str) -> Finished | None:
    rows = db.run("SELECT order_id, response_status, response_body FROM idempotency_keys WHERE user_id = :user_id "
                  "AND idempotency_key = :key AND response_status IS NOT NULL", user_id=user_id, key=key)
    return Finished(*rows[0]) if rows else None


def delete_unreserved(db: Connection, order_id: uuid.UUID) -> bool:
    """An order refused before anything was held (unknown product, out of stock): it never existed for the user.
    False when it is no longer pending (another request settled it)."""
    return bool(db.run("DELETE FROM orders WHERE id = :id AND status = 'pending' RETURNING id", id=order_id))


def settle(db: Connection, order_id: uuid.UUID, new: str, reason: str | None = None,
           lines: list[ReservedLine] | None = None, currency: str | None = None, total: Decimal | None = None,
           refunded: bool = False) -> bool:
    """Move the pending order to `new` with its lines and total; False when it is no longer pending."""
    moved = db.run("UPDATE orders SET status = :new, failure_reason = COALESCE(:reason, failure_reason), "
                   "currency = COALESCE(:currency, currency), total_amount = COALESCE(:total, total_amount), "
                   "refunded_at = CASE WHEN :refunded THEN now() END "
                   "WHERE id = :id AND status = 'pending' RETURNING id",
                   new=new, reason=reason, currency=currency, total=total, refunded=refunded, id=order_id)
    if moved and lines:
        db.run("INSERT INTO order_lines (order_id, line_no, product_sku, product_name, quantity, price_at_purchase, "
               "currency) SELECT :id, t.n, t.line->>'sku', t.line->>'name', (t.line->>'quantity')::int, "
               "(t.line->'price'->>'amount')::numeric, t.line->'price'->>'currency' "
               "FROM jsonb_array_elements(CAST(:lines AS jsonb)) WITH ORDINALITY AS t(line, n)",
               id=order_id, lines=json.dumps([line.model_dump(mode="json") for line in lines]))
    return bool(moved)


def pay(db: Connection, user_id: str, key: str, order_id: uuid.UUID, lines: list[ReservedLine], currency: str,
        total: Decimal, card_last4: str, cart_lines: list[dict] | None, first_retry: float) -> dict | None:
    """In one statement: the pending order becomes paid with its lines and payment, the order-created event (and
    the cart's removal for a cart order) goes into the outbox, and the key is answered. None when the order was
    no longer pending. One round trip instead of nine: this is most of an order's database cost."""
    items = [{"product_sku": line.sku, "product_name": line.name, "quantity": line.quantity,
              "price_at_purchase": str(line.price.amount), "line_total": str(line.price.amount * line.quantity),
              "currency": line.price.currency} for line in lines]
    rows = db.run(
        "WITH o AS (UPDATE orders SET status = 'paid', currency = :currency, total_amount = :total "
        f"  WHERE id = :id AND status = 'pending' RETURNING {ORDER_COLUMNS}), "
        "l AS (INSERT INTO order_lines (order_id, line_no, product_sku, product_name, quantity, price_at_purchase, "
        "  currency) SELECT o.id, t.n, t.line->>'product_sku', t.line->>'product_name', (t.line->>'quantity')::int, "
        "  (t.line->>'price_at_purchase')::numeric, t.line->>'currency' "
        "  FROM o, jsonb_array_elements(CAST(:items AS jsonb)) WITH ORDINALITY AS t(line, n)), "
        "p AS (INSERT INTO payments (order_id, amount, currency, card_last4, outcome) "
        "  SELECT o.id, :total, :currency, :last4, 'approved' FROM o ON CONFLICT (order_id) DO NOTHING), "
        "e AS (INSERT INTO outbox (id, destination, event_type, source, subject, data, next_attempt_at) "
        "  SELECT CAST(:event_id AS uuid), 'sink', :event_type, '/orders', o.id::text, jsonb_build_object("
        "    'id', o.id::text, 'order_id', o.id::text, 'user_id', o.user_id, 'status', o.status, "
        "    'items', CAST(:items AS jsonb), 'total_price', o.total_amount::text, 'currency', o.currency, "
        "    'contact', o.contact, 'created_at', o.created_at), now() + make_interval(secs => :first_retry) FROM o "
        "  UNION ALL SELECT CAST(:cart_id AS uuid), 'cart', 'cart-remove-ordered', '/orders', o.id::text, "
        "    jsonb_build_object('user_id', o.user_id, 'lines', CAST(:cart_lines AS jsonb)), "
        "    now() + make_interval(secs => :first_retry) FROM o WHERE CAST(:cart_lines AS jsonb) IS NOT NULL "
        "  RETURNING id, destination, event_type, source, subject, data, created_at, attempts), "
        "k AS (UPDATE idempotency_keys SET response_status = 201, response_body = NULL, recovery_point = 'finished' "
        "  WHERE user_id = :user_id AND idempotency_key = :key AND response_status IS NULL "
        "  AND EXISTS (SELECT 1 FROM o)) "
        f"SELECT {', '.join('o.' + field for field in _ORDER_FIELDS)}, "
        "(SELECT jsonb_agg(jsonb_build_array(e.id, e.destination, e.event_type, e.source, e.subject, e.data, "
        "  e.created_at, e.attempts)) FROM e) FROM o",
        id=order_id, currency=currency, total=total, items=json.dumps(items), last4=card_last4,
        event_id=uuid.uuid4(), event_type=ORDER_CREATED, cart_id=uuid.uuid4(), first_retry=first_retry,
        cart_lines=None if cart_lines is None else json.dumps(cart_lines), user_id=user_id, key=key)
    if not rows:
        return None
    order = dict(zip(_ORDER_FIELDS, rows[0][:-1]))
    order["items"] = [item | {"price_at_purchase": Decimal(item["price_at_purchase"]),
                              "line_total": Decimal(item["line_total"])} for item in items]
    order["outbox"] = rows[0][-1]
    return order


def record_payment(db: Connection, order_id: uuid.UUID, amount: Decimal | None, currency: str | None,
                   card_last4: str, outcome: str, reason: str | None, refunded: bool = False) -> None:
    db.run("INSERT INTO payments (order_id, amount, currency, card_last4, outcome, reason, refunded_at) "
           "VALUES (:order_id, :amount, :currency, :last4, :outcome, :reason, CASE WHEN :refunded THEN now() END) "
           "ON CONFLICT (order_id) DO NOTHING", order_id=order_id, amount=amount, currency=currency,
           last4=card_last4, outcome=outcome, reason=reason, refunded=refunded)


def get_order(db: Connection, order_id: uuid.UUID, owner: str | None = None) -> dict | None:
    """The order with its lines; with `owner`, only if it is theirs (else None, as for an unknown id)."""
    if owner is None:
        rows = _orders(db, f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = :id", id=order_id)
    else:
        rows = _orders(db, f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = :id AND user_id = :owner",
                       id=order_id, owner=owner)
    return rows[0] if rows else None


def list_orders(db: Connection, user_id: str, limit: int, offset: int, status: str | None) -> tuple[list[dict], int]:
    # A pending order without a total is an attempt still being made: not part of the history yet.
    condition = "user_id = :user_id AND total_amount IS NOT NULL" + (" AND status = :status" if status else "")
    params = {"user_id": user_id, **({"status": status} if status else {})}
    total = db.run(f"SELECT count(*) FROM orders WHERE {condition}", **params)[0][0]
    page = _orders(db, f"SELECT {ORDER_COLUMNS} FROM orders WHERE {condition} "
                       "ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset",
                   limit=limit, offset=offset, **params)
    return page, total


def _orders(db: Connection, sql: str, **params) -> list[dict]:
    orders = [dict(zip(_ORDER_FIELDS, row)) for row in db.run(sql, **params)]
    if orders:
        lines = db.run("SELECT order_id, product_sku, product_name, quantity, price_at_purchase, currency "
                       "FROM order_lines WHERE order_id = ANY(CAST(:ids AS uuid[])) ORDER BY order_id, line_no",
                       ids=[str(order["id"]) for order in orders])
        by_order: dict = {}
        for order_id, sku, name, quantity, price, currency in lines:
            by_order.setdefault(order_id, []).append({
                "product_sku": sku, "product_name": name, "quantity": quantity, "price_at_purchase": price,
                "line_total": price * quantity, "currency": currency})
        for order in orders:
            order["items"] = by_order.get(order["id"], [])
    return orders


def _lines_json(lines: list[tuple[str, int]]) -> list[dict]:
    return [{"sku": sku, "quantity": quantity} for sku, quantity in lines]


def _lines_from_json(stored: list[dict] | None) -> list[tuple[str, int]] | None:
    return None if stored is None else [(line["sku"], line["quantity"]) for line in stored]
