"""The cold-start probe of each function: one real request that must succeed (2xx) and that used the function's
store, so a cold start includes creating the client, connecting and checking the schema.

A probe is made fresh for each start (a new SKU, a new reservation, a new Idempotency-Key, a new shopper's cart, a
new dead letter) from fixtures that the warm shop made once; what a probe needs made first (a reservation to
release, a product's ETag, a dead outbox row) is made by a Fixtures method while the probe is built, before the
spawn, so it is never timed. Every route has a probe (tests/unit/test_bench_probes.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import httpx

from local.ping import ping_headers
from local.service_keys import allowed_caller_headers
from local.token import issue_token
from shared.event_types import ORDER_CREATED
from shared.postgres import connect


@dataclass
class Probe:
    method: str
    path: str
    headers: dict = field(default_factory=dict)
    json: dict | None = None


@dataclass
class Fixtures:
    """What the probes need, made once through the warm shop."""

    shop: object  # local.shop.LocalShop
    admin: dict
    customer: dict
    user: str
    sku: str
    product_id: str
    order_id: str
    order_body: dict
    tokens: dict  # the shop's user-token settings: a fresh shopper gets a token of its own

    def _post(self, name: str, path: str, body: dict, headers: dict) -> httpx.Response:
        """A request to the warm function `name` itself (not through the gateway), as its allowed caller."""
        response = httpx.post(f"{self.shop.functions[name].url}{path}", json=body, timeout=30,
                              headers={**allowed_caller_headers(name), **headers})
        assert response.is_success, f"{name}: {response.status_code} {response.text}"
        return response

    def reservation(self) -> str:
        """A new reservation of one unit, made by the warm reserve function (release and confirm need one)."""
        reservation_id = uuid.uuid4().hex
        self._post("catalog-reserve-stock", "/internal/stock/reservations",
                   {"reservation_id": reservation_id, "lines": [{"sku": self.sku, "quantity": 1}]}, {})
        return reservation_id

    def shopper(self) -> tuple[str, dict]:
        """A new user with one line in the cart, and their headers: the probes that empty or shrink a cart do it
        to this one, so the bench user's cart (priced by the warm-cost rounds) stays as it is."""
        user = f"cold-{uuid.uuid4().hex[:12]}"
        headers = {"Authorization": f"Bearer {issue_token(user, 'customer', settings=self.tokens)}"}
        self._post("cart-add-item", f"/cart/{user}/items", {"product_sku": self.sku, "quantity": 2}, headers)
        return user, headers

    def new_product(self) -> tuple[str, str]:
        """A new product's id and ETag (version 1): an update that sets stock_quantity must name it (If-Match)."""
        created = self._post("catalog-create-product", "/products", {
            "sku": f"COLD-EDIT-{uuid.uuid4().hex[:8]}", "name": "Cold Edit Mug", "brand": "Bench",
            "stock_quantity": 5, "price": {"amount": "2.00", "currency": "EUR"}}, self.admin)
        return created.json()["id"], created.headers["etag"]

    def dead_outbox_row(self) -> str:
        """A new dead outbox row, written straight to the database (a row dies only after twelve failed
        deliveries); a stock release of a reservation nobody holds, so the relay delivers it (404 is done) once
        re-queued."""
        row_id = uuid.uuid4()
        database = connect(self.shop.settings["DATABASE_URL"], timeout=10)
        try:
            database.run("INSERT INTO outbox (id, destination, event_type, source, subject, data, attempts, dead_at, "
                         "last_error) VALUES (:id, 'release-stock', 'release-stock', '/orders', :subject, "
                         "CAST(:data AS jsonb), 12, now(), 'bench: made dead')", id=row_id,
                         subject=str(uuid.uuid4()), data='{"bench": true}')
        finally:
            database.close()
        return str(row_id)

    def dead_letter(self) -> str:
        """A new dead letter, kept by the warm sink as the broker would hand it over, and its id from the warm
        list: an order confirmation, so replaying it notifies (once) and answers 202."""
        event_id = str(uuid.uuid4())
        self._post("notify-dead-letter", "/", order_created_data(), {
            **order_created_event(event_id), "ce-knativeerrorcode": "503",
            "ce-knativeerrordest": "http://notify-order-created.shop.svc.cluster.local"})
        listed = httpx.get(f"{self.shop.functions['notify-list-dead-letters'].url}/admin/dead-letters",
                           params={"type": ORDER_CREATED, "limit": 100}, headers=self.admin, timeout=30)
        assert listed.status_code == 200, listed.text
        return next(entry["id"] for entry in listed.json()["items"] if entry["event_id"] == event_id)




def order_created_event(event_id: str) -> dict:
    """The CloudEvent headers of an order.created event in binary mode, as the broker delivers it."""
    return {"ce-specversion": "1.0", "ce-id": event_id, "ce-source": "/orders", "ce-type": ORDER_CREATED,
            "ce-subject": "order", "ce-time": datetime.now(timezone.utc).isoformat(),
            "content-type": "application/json"}


def order_created_data() -> dict:
    """A new order's order.created data with an email contact (checked, as a confirmation's is), notified through
    the log backend: sent nowhere."""
    return {"order_id": str(uuid.uuid4()), "user_id": "bench-user", "status": "paid", "currency": "EUR",
            "contact": {"email": "bench@example.com"},
            "total_price": "9.90", "items": [{"product_sku": "BENCH-1", "product_name": "Bench Mug", "quantity": 1,
                                              "price_at_purchase": "9.90", "line_total": "9.90", "currency": "EUR"}]}


def _alert_group(unique: str) -> dict:
    """Alertmanager's webhook payload (version 4) for a new group of one alert: a new ledger key, so it is sent."""
    labels = {"alertname": "BenchColdStart", "severity": "ticket"}
    return {"version": "4", "groupKey": f'{{}}:{{alertname="BenchColdStart-{unique}"}}', "status": "firing",
            "receiver": "shop-ticket", "groupLabels": labels, "commonLabels": labels,
            "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": "bench"},
                        "startsAt": datetime.now(timezone.utc).isoformat(), "fingerprint": unique}]}


def _update_stock(f: Fixtures) -> Probe:
    product_id, etag = f.new_product()
    return Probe("PATCH", f"/products/{product_id}", {**f.admin, "If-Match": etag}, {"stock_quantity": 7})


def _remove_item(f: Fixtures) -> Probe:
    user, headers = f.shopper()
    return Probe("DELETE", f"/cart/{user}/items/{f.sku}", headers)


def _clear_cart(f: Fixtures) -> Probe:
    user, headers = f.shopper()
    return Probe("DELETE", f"/cart/{user}", headers)


def _remove_ordered(f: Fixtures) -> Probe:
    user, _ = f.shopper()
    return Probe("POST", f"/internal/cart/{user}/orders/{uuid.uuid4()}",
                 json={"lines": [{"product_sku": f.sku, "quantity": 1}]})


# Each route's probe, from the fixtures and a value new to this start. Module-level, so a test can check that
# every route has one without a running shop.
PROBES: dict[str, Callable[[Fixtures, str], Probe]] = {
    "catalog-list-products": lambda f, unique: Probe("GET", "/products?limit=5"),
    "catalog-create-product": lambda f, unique: Probe("POST", "/products", f.admin, {
        "sku": f"COLD-{unique}", "name": "Cold Mug", "brand": "Bench", "stock_quantity": 1,
        "price": {"amount": "1.00", "currency": "EUR"}}),
    "catalog-get-product": lambda f, unique: Probe("GET", f"/products/{f.product_id}"),
    "catalog-update-product": lambda f, unique: _update_stock(f),
    "catalog-search-products": lambda f, unique: Probe("GET", "/search?q=bench"),
    "catalog-lookup-products": lambda f, unique: Probe("GET", f"/internal/products/lookup?skus={f.sku}"),
    "catalog-reserve-stock": lambda f, unique: Probe("POST", "/internal/stock/reservations", json={
        "reservation_id": unique, "lines": [{"sku": f.sku, "quantity": 1}]}),
    "catalog-release-stock": lambda f, unique: Probe("DELETE", f"/internal/stock/reservations/{f.reservation()}"),
    "catalog-confirm-stock": lambda f, unique: Probe("POST",
                                                     f"/internal/stock/reservations/{f.reservation()}/confirm"),
    "catalog-expire-reservations": lambda f, unique: Probe("POST", "/", ping_headers(unique), {}),
    "cart-get-cart": lambda f, unique: Probe("GET", f"/cart/{f.user}", f.customer),
    "cart-clear-cart": lambda f, unique: _clear_cart(f),
    "cart-add-item": lambda f, unique: Probe("POST", f"/cart/{f.user}/items", f.customer,
                                             {"product_sku": f.sku, "quantity": 1}),
    "cart-set-item-quantity": lambda f, unique: Probe("PUT", f"/cart/{f.user}/items/{f.sku}", f.customer,
                                                      {"quantity": 1}),
    "cart-remove-item": lambda f, unique: _remove_item(f),
    "cart-remove-ordered": lambda f, unique: _remove_ordered(f),
    "orders-create-order": lambda f, unique: Probe("POST", "/orders", {**f.customer, "Idempotency-Key": unique},
                                                   f.order_body),
    "orders-get-order": lambda f, unique: Probe("GET", f"/orders/details/{f.order_id}", f.customer),
    "orders-list-orders": lambda f, unique: Probe("GET", f"/orders/{f.user}", f.customer),
    "orders-outbox-relay": lambda f, unique: Probe("POST", "/", ping_headers(unique), {}),
    "orders-list-outbox": lambda f, unique: Probe("GET", "/admin/outbox?state=sent", f.admin),
    "orders-requeue-outbox": lambda f, unique: Probe("POST", f"/admin/outbox/{f.dead_outbox_row()}/requeue",
                                                     f.admin),
    "notify-order-created": lambda f, unique: Probe("POST", "/", order_created_event(str(uuid.uuid4())),
                                                    order_created_data()),
    "notify-dead-letter": lambda f, unique: Probe("POST", "/", {
        **order_created_event(str(uuid.uuid4())), "ce-knativeerrorcode": "503"}, order_created_data()),
    "notify-list-dead-letters": lambda f, unique: Probe("GET", "/admin/dead-letters", f.admin),
    "notify-replay-dead-letter": lambda f, unique: Probe("POST", f"/admin/dead-letters/{f.dead_letter()}/replay",
                                                         f.admin),
    "notify-send-notification": lambda f, unique: Probe("POST", "/notifications", f.admin, {
        "type": "sms", "recipient": "+33612345678", "body": f"Cold start {unique}"}),
    "notify-list-notifications": lambda f, unique: Probe("GET", "/notifications", f.admin),
    "notify-alert-webhook": lambda f, unique: Probe("POST", "/internal/alerts?to=ops@example.com", f.admin,
                                                    _alert_group(unique)),
}


def probe(name: str, f: Fixtures) -> Probe | None:
    """The request that shows `name` serving from its store (its preparation done), or None when it has none."""
    make = PROBES.get(name)
    if make is None:
        return None
    made = make(f, uuid.uuid4().hex[:8])
    made.headers = {**allowed_caller_headers(name), **made.headers}  # internal and event functions check callers
    return made
