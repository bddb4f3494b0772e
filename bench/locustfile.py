"""The shop's load scenario (Locust): shoppers browse, view, search, fill carts and check out, all through the
public API with real tokens, and every response is checked for what it must contain."""

from __future__ import annotations

import random
import uuid

from locust import HttpUser, between, events, task

from local.token import issue_token

ADMIN = {"Authorization": f"Bearer {issue_token('load-admin', 'admin', 6 * 3600)}"}
LOAD_SKUS = [f"LOAD-{index:03d}" for index in range(20)]  # plenty of stock, so checkout never runs dry
WORDS = ["coffee", "lamp", "running", "wireless", "kettle", "novel", "tent", "cotton", "oled", "yoga"]
CATEGORIES = ["electronics", "kitchen", "sports", "books", "home", "clothing", None]


@events.test_start.add_listener
def stock_the_load_products(environment, **_):
    """Create (or restock) the products the checkouts buy; the demo catalog stays for browsing."""
    import httpx

    with httpx.Client(base_url=environment.host, headers=ADMIN, timeout=10) as client:
        for index, sku in enumerate(LOAD_SKUS):
            body = {"sku": sku, "name": f"Load Test Item {index}", "brand": "Loadgen", "stock_quantity": 1_000_000,
                    "price": {"amount": f"{5 + index}.00", "currency": "EUR"}, "categories": ["load"],
                    "tags": ["load"]}
            if client.post("/products", json=body).status_code == 409:
                found = client.get("/search", params={"q": sku}).json()["items"]
                for product in found:  # an absolute stock is set against the version just read (If-Match)
                    etag = client.get(f"/products/{product['id']}").headers["etag"]
                    client.patch(f"/products/{product['id']}", json={"stock_quantity": 1_000_000},
                                 headers={"If-Match": etag}).raise_for_status()


class Shopper(HttpUser):
    wait_time = between(0.2, 1.0)

    def on_start(self):
        self.user_id = f"load-{uuid.uuid4().hex[:10]}"
        self.auth = {"Authorization": f"Bearer {issue_token(self.user_id, 'customer', 6 * 3600)}"}
        with self.client.get("/products", params={"limit": 100}, name="catalog-list-products",
                             catch_response=True) as response:
            self.product_ids = [item["id"] for item in response.json().get("items", [])] if response.ok else []
        self.cart_size = 0

    @task(10)
    def browse(self):
        params = {"limit": 20, "sort": random.choice(["price", "-price", "name", "-created_at"])}
        category = random.choice(CATEGORIES)
        if category:
            params["category"] = category
        with self.client.get("/products", params=params, name="catalog-list-products", catch_response=True) as r:
            body = r.json() if r.status_code == 200 else {}
            if not {"items", "total", "limit", "offset"} <= body.keys():
                r.failure(f"list answered {r.status_code} without a page")

    @task(8)
    def view_product(self):
        if not self.product_ids:
            return
        product_id = random.choice(self.product_ids)
        with self.client.get(f"/products/{product_id}", name="catalog-get-product", catch_response=True) as r:
            if r.status_code != 200 or r.json().get("id") != product_id:
                r.failure(f"product {product_id} answered {r.status_code}")

    @task(4)
    def search(self):
        with self.client.get("/search", params={"q": random.choice(WORDS)}, name="catalog-search-products",
                             catch_response=True) as r:
            if r.status_code != 200 or "items" not in r.json():
                r.failure(f"search answered {r.status_code}")

    @task(3)
    def add_to_cart(self):
        sku = random.choice(LOAD_SKUS)
        with self.client.post(f"/cart/{self.user_id}/items", json={"product_sku": sku, "quantity": 1},
                              headers=self.auth, name="cart-add-item", catch_response=True) as r:
            lines = {line["product_sku"] for line in r.json().get("items", [])} if r.status_code == 200 else set()
            if sku not in lines:
                r.failure(f"add to cart answered {r.status_code} without the line")
            else:
                self.cart_size = len(lines)

    @task(3)
    def view_cart(self):
        with self.client.get(f"/cart/{self.user_id}", headers=self.auth, name="cart-get-cart",
                             catch_response=True) as r:
            if r.status_code != 200 or r.json().get("user_id") != self.user_id:
                r.failure(f"cart answered {r.status_code}")

    @task(1)
    def checkout(self):
        if not self.cart_size:
            return
        body = {"user_id": self.user_id, "contact": {"email": f"{self.user_id}@example.com"},
                "shipping_address": {"street": "1 Load St", "city": "Lyon", "postal_code": "69001", "country": "FR"},
                "payment": {"card_number": "4242424242424242", "expiry": "12/39", "cvv": "123"}}
        headers = {**self.auth, "Idempotency-Key": uuid.uuid4().hex}
        with self.client.post("/orders", json=body, headers=headers, name="orders-create-order",
                              catch_response=True) as r:
            if r.status_code != 201 or r.json().get("status") not in ("paid", "confirmed"):
                r.failure(f"checkout answered {r.status_code}")
            else:
                self.cart_size = 0
