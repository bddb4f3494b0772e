"""A shopper's whole journey through the local gateway, over HTTP only."""

from __future__ import annotations

import uuid

from tests.support import ADMIN, bearer, unique


def test_browse_add_to_cart_order_and_get_a_confirmation(gateway):
    shopper = unique("journey")
    headers = bearer(shopper)
    word = f"zq{uuid.uuid4().hex[:6]}"
    created = gateway.post("/products", headers=ADMIN, json={
        "sku": unique("JOURNEY"), "name": f"{word} Espresso Cups", "price": {"amount": "18.00", "currency": "EUR"},
        "brand": "Brewmaster", "stock_quantity": 8, "categories": ["kitchen"], "tags": ["coffee"]}).json()

    found = gateway.get("/search", params={"q": word}).json()
    assert [item["sku"] for item in found["items"]] == [created["sku"]]
    product = gateway.get(f"/products/{found['items'][0]['id']}").json()

    cart = gateway.post(f"/cart/{shopper}/items", json={"product_sku": product["sku"], "quantity": 2},
                        headers=headers).json()
    assert cart["total_price"] == "36.00"

    order = gateway.post("/orders", headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, json={
        "user_id": shopper, "contact": {"email": f"{shopper}@example.com"},
        "shipping_address": {"street": "5 Rue Neuve", "city": "Paris", "postal_code": "75001", "country": "FR"},
        "payment": {"card_number": "4242 4242 4242 4242", "expiry": "10/40", "cvv": "999"}})
    assert order.status_code == 201, order.text
    order = order.json()

    assert order["status"] == "confirmed" and order["total_price"] == "36.00"
    assert gateway.get(f"/cart/{shopper}", headers=headers).json()["items"] == []
    assert gateway.get(f"/products/{product['id']}").json()["stock_quantity"] == 6
    history = gateway.get(f"/orders/{shopper}", headers=headers).json()
    assert [item["id"] for item in history["items"]] == [order["id"]]
    confirmation = gateway.get("/notifications", params={"order_id": order["id"]}, headers=ADMIN).json()
    assert [(n["status"], n["channel"], n["recipient"]) for n in confirmation["items"]] == [
        ("sent", "email", f"{shopper}@example.com")]
