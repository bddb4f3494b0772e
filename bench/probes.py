"""The cold-start probe of each function: one real request that must succeed (2xx) and that used the function's
store, so a cold start includes creating the client, connecting and checking the schema.

A probe is made fresh for each start (a new SKU, a new reservation, a new Idempotency-Key) from fixtures that the
warm shop made once. A function without a probe here is timed to its first answer of any status, and the
benchmark says so.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import httpx

from local.ping import PING_SOURCE
from local.service_keys import allowed_caller_headers


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

    def reservation(self) -> str:
        """A new reservation of one unit, made by the warm reserve function (release and confirm need one)."""
        reservation_id = uuid.uuid4().hex
        response = httpx.post(f"{self.shop.functions['catalog-reserve-stock'].url}/internal/stock/reservations",
                              json={"reservation_id": reservation_id, "lines": [{"sku": self.sku, "quantity": 1}]},
                              headers=allowed_caller_headers("catalog-reserve-stock"), timeout=30)
        assert response.status_code in (200, 201), response.text
        return reservation_id


PING = {"ce-specversion": "1.0", "ce-type": "dev.knative.sources.ping", "ce-source": PING_SOURCE,
        "content-type": "application/json"}


def probe(name: str, f: Fixtures) -> Probe | None:
    """The request that shows `name` serving from its store, or None when this benchmark has none for it."""
    unique = uuid.uuid4().hex[:8]
    table = {
        "catalog-list-products": lambda: Probe("GET", "/products?limit=5"),
        "catalog-get-product": lambda: Probe("GET", f"/products/{f.product_id}"),
        "catalog-search-products": lambda: Probe("GET", "/search?q=bench"),
        "catalog-lookup-products": lambda: Probe("GET", f"/internal/products/lookup?skus={f.sku}"),
        "catalog-create-product": lambda: Probe("POST", "/products", f.admin, {
            "sku": f"COLD-{unique}", "name": "Cold Mug", "brand": "Bench", "stock_quantity": 1,
            "price": {"amount": "1.00", "currency": "EUR"}}),
        "catalog-reserve-stock": lambda: Probe("POST", "/internal/stock/reservations", json={
            "reservation_id": unique, "lines": [{"sku": f.sku, "quantity": 1}]}),
        "catalog-release-stock": lambda: Probe("DELETE", f"/internal/stock/reservations/{f.reservation()}"),
        "catalog-confirm-stock": lambda: Probe("POST", f"/internal/stock/reservations/{f.reservation()}/confirm"),
        "catalog-expire-reservations": lambda: Probe("POST", "/", {**PING, "ce-id": unique}, {}),
        "cart-get-cart": lambda: Probe("GET", f"/cart/{f.user}", f.customer),
        "cart-add-item": lambda: Probe("POST", f"/cart/{f.user}/items", f.customer,
                                       {"product_sku": f.sku, "quantity": 1}),
        "cart-set-item-quantity": lambda: Probe("PUT", f"/cart/{f.user}/items/{f.sku}", f.customer, {"quantity": 1}),
        "orders-create-order": lambda: Probe("POST", "/orders", {**f.customer, "Idempotency-Key": unique},
                                             f.order_body),
        "orders-get-order": lambda: Probe("GET", f"/orders/details/{f.order_id}", f.customer),
        "orders-list-orders": lambda: Probe("GET", f"/orders/{f.user}", f.customer),
        "orders-outbox-relay": lambda: Probe("POST", "/", {**PING, "ce-id": unique}, {}),
        "orders-list-outbox": lambda: Probe("GET", "/admin/outbox?state=sent", f.admin),
        "notify-list-notifications": lambda: Probe("GET", "/notifications", f.admin),
        "notify-list-dead-letters": lambda: Probe("GET", "/admin/dead-letters", f.admin),
    }
    make = table.get(name)
    if make is None:
        return None
    made = make()
    made.headers = {**allowed_caller_headers(name), **made.headers}  # internal and event functions check callers
    return made
