"""What the crash and chaos tests of the checkout share: orders placed with keys, and the checkout's invariants read
from the real stores. (A function alone with faults: tests.support.function_alone; a fault that kills its worker is
survived by its gunicorn master, which starts a new worker on the same port, as Knative would start a new pod.)"""

from __future__ import annotations

import time
import uuid

import httpx

from local.processes import Running
from shared.peers import url_variable
from tests.support import ADMIN, bearer, tick, unique

CARD = "4242424242424242"
# Short enough for a test to watch a request's key expire, a reservation expire and the outbox retry.
FAST = {"ORDER_LEASE_SECONDS": "1.5", "IDEMPOTENCY_WAIT_SECONDS": "0.3", "OUTBOX_FIRST_RETRY_SECONDS": "0.5",
        "OUTBOX_MAX_BACKOFF_SECONDS": "1"}
FINAL_SLUGS = {"out-of-stock", "order-abandoned", "payment-declined", "payment-not-completed", "validation-error",
               "not-found"}


def pointing_at(*functions: Running) -> dict[str, str]:
    """Settings that make callers reach these functions instead of the session's."""
    return {url_variable(function.name): function.url for function in functions}


def product(gateway: httpx.Client, stock: int = 10, amount: str = "10.00") -> dict:
    body = {"sku": unique("CRASH"), "name": "Crash Mug", "price": {"amount": amount, "currency": "EUR"},
            "brand": "Durable", "stock_quantity": stock}
    created = gateway.post("/products", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    return created.json()


def stock_of(gateway: httpx.Client, item: dict) -> int:
    return gateway.get(f"/products/{item['id']}", headers=ADMIN).json()["stock_quantity"]


def order_body(user: str, lines: list[tuple[dict, int]] | None, card: str = CARD) -> dict:
    body = {"user_id": user, "contact": {"email": f"{user}@example.com"},
            "shipping_address": {"street": "1 Main St", "city": "Lyon", "postal_code": "69001", "country": "FR"},
            "payment": {"card_number": card, "expiry": "12/39", "cvv": "123"}}
    if lines is not None:
        body["items"] = [{"product_sku": item["sku"], "quantity": quantity} for item, quantity in lines]
    return body


def place(url: str, user: str, body: dict, key: str, timeout: float = 10) -> httpx.Response | None:
    """POST /orders once; None when the connection failed (the instance died under the request)."""
    try:
        return httpx.post(f"{url}/orders", json=body, headers={**bearer(user), "Idempotency-Key": key},
                          timeout=timeout)
    except httpx.HTTPError:
        return None


def is_final(response: httpx.Response | None) -> bool:
    """A definitive answer for a key: the order, or a refusal that retrying cannot change."""
    if response is None:
        return False
    if response.status_code == 201:
        return True
    slug = response.json().get("type", "").rsplit("/", 1)[-1] if response.status_code in (402, 404, 409, 422) else ""
    return slug in FINAL_SLUGS


def place_until_final(url: str, user: str, body: dict, key: str, within: float = 30) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        response = place(url, user, body, key)
        if is_final(response) or time.monotonic() > deadline:
            assert is_final(response), None if response is None else (response.status_code, response.text)
            return response
        time.sleep(0.3)


def sweep(relay_url: str, expire_url: str | None = None) -> None:
    """One PingSource tick of the orders relay (and of the catalog's reservation sweep)."""
    assert tick("orders-outbox-relay", relay_url) == 200
    if expire_url:
        assert tick("catalog-expire-reservations", expire_url) == 200


def order_state(db, order_id: str) -> dict:
    rows = db.run("SELECT o.status, o.failure_reason, o.refunded_at IS NOT NULL, c.outcome, c.refunded_at IS NOT NULL "
                  "FROM orders o LEFT JOIN processor_charges c ON c.order_id = o.id WHERE o.id = CAST(:id AS uuid)",
                  id=order_id)
    if not rows:
        return {}
    status, reason, refunded, charge, charge_refunded = rows[0]
    return {"status": status, "reason": reason, "refunded": refunded, "charge": charge,
            "charge_refunded": charge_refunded}


def key_order(db, user: str, key: str) -> str | None:
    rows = db.run("SELECT order_id FROM idempotency_keys WHERE user_id = :u AND idempotency_key = :k", u=user, k=key)
    return str(rows[0][0]) if rows else None


def sold(db, sku: str) -> int:
    """Units of `sku` in orders that are paid or confirmed: the stock the catalog may have given away for good."""
    return db.run("SELECT COALESCE(sum(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id "
                  "WHERE l.product_sku = :sku AND o.status IN ('paid', 'confirmed')", sku=sku)[0][0]


def silent_charges(db, user_prefix: str) -> list:
    """Approved charges whose order is neither paid nor refunded: money taken for nothing."""
    return db.run("SELECT c.order_id, o.status FROM processor_charges c JOIN orders o ON o.id = c.order_id "
                  "WHERE o.user_id LIKE :prefix AND c.outcome = 'approved' AND NOT "
                  "((o.status IN ('paid', 'confirmed') AND c.refunded_at IS NULL) OR "
                  " (o.status = 'cancelled' AND o.refunded_at IS NOT NULL AND c.refunded_at IS NOT NULL))",
                  prefix=user_prefix + "%")


def new_key() -> str:
    return uuid.uuid4().hex
