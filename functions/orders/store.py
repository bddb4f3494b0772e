"""PostgreSQL queries of the orders domain (pg8000, synchronous: called inside `in_transaction`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal

from shared.catalog_contract import ReservedLine
from shared.postgres import Connection

ORDER_COLUMNS = ("id, user_id, status, currency, total_amount, shipping_address, contact, card_last4, "
                 "failure_reason, created_at, updated_at")


@dataclass(frozen=True)
class Claim:
    order_id: uuid.UUID
    request_hash: str
    response_status: int | None
    response_body: dict | None


def claim_key(db: Connection, user_id: str, key: str, request_hash: str, order_id: uuid.UUID) -> Claim | None:
    """Claim an Idempotency-Key for a new order; None when claimed now, else the earlier claim."""
    claimed = db.run("INSERT INTO idempotency_keys (user_id, idempotency_key, request_hash, order_id) "
                     "VALUES (:user_id, :key, :hash, :order_id) ON CONFLICT DO NOTHING RETURNING order_id",
                     user_id=user_id, key=key, hash=request_hash, order_id=order_id)
    return None if claimed else find_claim(db, user_id, key)


def find_claim(db: Connection, user_id: str, key: str) -> Claim | None:
    rows = db.run("SELECT order_id, request_hash, response_status, response_body FROM idempotency_keys "
                  "WHERE user_id = :user_id AND idempotency_key = :key", user_id=user_id, key=key)
    return Claim(*rows[0]) if rows else None


def save_response(db: Connection, user_id: str, key: str, status: int, body: dict) -> None:
    db.run("UPDATE idempotency_keys SET response_status = :status, response_body = CAST(:body AS jsonb) "
           "WHERE user_id = :user_id AND idempotency_key = :key",
           status=status, body=json.dumps(body, default=str), user_id=user_id, key=key)


def forget_claim(db: Connection, user_id: str, key: str) -> None:
    """Free a key whose request failed before deciding anything, so the client's retry can proceed."""
    db.run("DELETE FROM idempotency_keys WHERE user_id = :user_id AND idempotency_key = :key AND "
           "response_status IS NULL", user_id=user_id, key=key)


def insert_order(db: Connection, order_id: uuid.UUID, user_id: str, lines: list[ReservedLine], currency: str,
                 total: Decimal, address: dict, contact: dict, card_last4: str) -> None:
    db.run("INSERT INTO orders (id, user_id, currency, total_amount, shipping_address, contact, card_last4) "
           "VALUES (:id, :user_id, :currency, :total, CAST(:address AS jsonb), CAST(:contact AS jsonb), :last4)",
           id=order_id, user_id=user_id, currency=currency, total=total, address=json.dumps(address),
           contact=json.dumps(contact), last4=card_last4)
    for number, line in enumerate(lines, start=1):
        db.run("INSERT INTO order_lines (order_id, line_no, product_sku, product_name, quantity, price_at_purchase, "
               "currency) VALUES (:order_id, :no, :sku, :name, :quantity, :price, :currency)",
               order_id=order_id, no=number, sku=line.sku, name=line.name, quantity=line.quantity,
               price=line.price.amount, currency=line.price.currency)


def set_status(db: Connection, order_id: uuid.UUID, current: str, new: str, reason: str | None = None) -> bool:
    """Move the order from `current` to `new`; False when it is no longer in `current` (someone else moved it)."""
    return bool(db.run("UPDATE orders SET status = :new, failure_reason = COALESCE(:reason, failure_reason) "
                       "WHERE id = :id AND status = :current RETURNING id",
                       new=new, reason=reason, id=order_id, current=current))


def record_payment(db: Connection, order_id: uuid.UUID, amount: Decimal, currency: str, card_last4: str,
                   outcome: str, reason: str | None) -> None:
    db.run("INSERT INTO payments (order_id, amount, currency, card_last4, outcome, reason) "
           "VALUES (:order_id, :amount, :currency, :last4, :outcome, :reason)", order_id=order_id, amount=amount,
           currency=currency, last4=card_last4, outcome=outcome, reason=reason)


def get_order(db: Connection, order_id: uuid.UUID) -> dict | None:
    rows = _orders(db, f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = :id", id=order_id)
    return rows[0] if rows else None


def list_orders(db: Connection, user_id: str, limit: int, offset: int, status: str | None) -> tuple[list[dict], int]:
    condition = "user_id = :user_id" + (" AND status = :status" if status else "")
    params = {"user_id": user_id, **({"status": status} if status else {})}
    total = db.run(f"SELECT count(*) FROM orders WHERE {condition}", **params)[0][0]
    page = _orders(db, f"SELECT {ORDER_COLUMNS} FROM orders WHERE {condition} "
                       "ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset",
                   limit=limit, offset=offset, **params)
    return page, total


def _orders(db: Connection, sql: str, **params) -> list[dict]:
    columns = [name.strip() for name in ORDER_COLUMNS.split(",")]
    orders = [dict(zip(columns, row)) for row in db.run(sql, **params)]
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
