"""`make smoke BASE_URL=…`: the whole shopping journey against any running shop, through its public gateway only.

    python -m local.smoke http://127.0.0.1:8080 [--timeout 120]

Lists and searches the catalog, creates a product as admin, adds it to an emptied cart, orders the cart with a
fresh Idempotency-Key, waits for the order to be confirmed and the cart emptied, and for the confirmation to be
`sent` in the notification ledger, then takes the product off sale. Each step prints one line; the first failure
stops the run (exit 1).

Tokens: ADMIN_TOKEN and USER_TOKEN when set (a real cluster's operator provides them; the user is USER_TOKEN's
`sub`), otherwise minted by local.token with USER_TOKEN_HS256_KEYS, _ISSUER and _AUDIENCE (or `make up`'s).
SMOKE_EMAIL sets the order's contact address (default <user>@example.com): with NOTIFY_BACKEND=aws it must be an
address SES accepts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from local.token import issue_token

TRANSIENT = {502, 503, 504}  # a function starting from zero, or a store briefly away: retried within the wait


class StepFailed(Exception):
    pass


def _excerpt(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url.path} answered {response.status_code}: " \
           f"{response.text[:300]}"


def expect(response: httpx.Response, *statuses: int) -> Any:
    """The response's JSON body when its status is one of `statuses`; otherwise the step fails."""
    if response.status_code not in statuses:
        hint = " (is the token signed with this shop's key? set ADMIN_TOKEN/USER_TOKEN or USER_TOKEN_HS256_KEYS)" \
            if response.status_code in (401, 403) else ""
        raise StepFailed(_excerpt(response) + hint)
    return response.json() if response.content else None


def wait_for(what: str, check: Callable[[], tuple[bool, str]], timeout: float, every: float = 0.5) -> str:
    """Call `check` until it answers (True, detail) or `timeout` seconds pass; the last detail says where it stood."""
    deadline = time.monotonic() + timeout
    while True:
        done, detail = check()
        if done:
            return detail
        if time.monotonic() > deadline:
            raise StepFailed(f"{what}: not done after {timeout:.0f} s (last seen: {detail})")
        time.sleep(every)


class Journey:
    def __init__(self, client: httpx.Client, admin_token: str, user_token: str, user_id: str, email: str,
                 timeout: float):
        self.client, self.user_id, self.email, self.timeout = client, user_id, email, timeout
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.user = {"Authorization": f"Bearer {user_token}"}
        self.word = f"smoke{uuid.uuid4().hex[:8]}"
        self.product: dict | None = None
        self.order: dict | None = None

    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        return [("list the catalog", self.list_catalog), ("search the catalog", self.search_catalog),
                ("create a product as admin", self.create_product), ("find it by search", self.find_product),
                ("add it to the cart", self.add_to_cart), ("place the order", self.place_order),
                ("wait for the order to be confirmed and the cart emptied", self.wait_until_confirmed),
                ("wait for its confirmation in the notification ledger", self.wait_until_notified)]

    def list_catalog(self) -> str:
        page = expect(self.client.get("/products", params={"limit": 5}), 200)
        return f"{page['total']} products"

    def search_catalog(self) -> str:
        page = expect(self.client.get("/search", params={"q": "coffee"}), 200)
        return f"{page['total']} matches for 'coffee'"

    def create_product(self) -> str:
        self.product = expect(self.client.post("/products", headers=self.admin, json={
            "sku": f"SMOKE-{self.word.removeprefix('smoke').upper()}", "name": f"Smoke test mug {self.word}",
            "price": {"amount": "9.99", "currency": "EUR"}, "stock_quantity": 5, "categories": ["smoke-test"],
            "tags": ["smoke-test"], "brand": "Smoke"}), 201)
        return f"{self.product['sku']} ({self.product['id']})"

    def find_product(self) -> str:
        expect(self.client.get(f"/products/{self.product['id']}"), 200)

        def listed() -> tuple[bool, str]:
            page = expect(self.client.get("/search", params={"q": self.word}), 200)
            skus = [item["sku"] for item in page["items"]]
            return self.product["sku"] in skus, f"search answered {skus}"

        return wait_for("the new product in search results", listed, self.timeout)

    def add_to_cart(self) -> str:
        expect(self.client.delete(f"/cart/{self.user_id}", headers=self.user), 204)  # a given user may have lines
        cart = expect(self.client.post(f"/cart/{self.user_id}/items", headers=self.user,
                                       json={"product_sku": self.product["sku"], "quantity": 1}), 200)
        lines = {line["product_sku"]: line["quantity"] for line in cart["items"]}
        if lines.get(self.product["sku"]) != 1:
            raise StepFailed(f"the cart of {self.user_id} does not hold the product once: {lines}")
        return f"cart of {self.user_id}: {cart['total_items']} items, total {cart['total_price']} {cart['currency']}"

    def place_order(self) -> str:
        key = uuid.uuid4().hex
        body = {"user_id": self.user_id, "contact": {"email": self.email},  # no items: the cart is ordered
                "shipping_address": {"street": "1 Smoke Street", "city": "Lyon", "postal_code": "69001",
                                     "country": "FR"},
                "payment": {"card_number": "4242424242424242", "expiry": "12/39", "cvv": "123"}}

        def placed() -> tuple[bool, str]:
            response = self.client.post("/orders", headers={**self.user, "Idempotency-Key": key}, json=body)
            busy = response.status_code == 409 and "retry-after" in response.headers
            if response.status_code in TRANSIENT or busy:
                return False, _excerpt(response)  # the same key again: the order resumes, never doubles
            self.order = expect(response, 201)
            return True, f"order {self.order['id']} {self.order['status']}, {self.order['total_price']} " \
                         f"{self.order['currency']} (Idempotency-Key {key})"

        return wait_for("the order", placed, self.timeout, every=1.0)

    def wait_until_confirmed(self) -> str:
        def confirmed() -> tuple[bool, str]:
            order = expect(self.client.get(f"/orders/details/{self.order['id']}", headers=self.user), 200)
            if order["status"] in ("payment_failed", "cancelled"):
                raise StepFailed(f"order {order['id']} ended {order['status']}")
            lines = [item["product_sku"] for item in order["items"]]
            if lines != [self.product["sku"]]:
                raise StepFailed(f"order {order['id']} holds {lines}, not the product added to the cart")
            cart = expect(self.client.get(f"/cart/{self.user_id}", headers=self.user), 200)
            return order["status"] == "confirmed" and not cart["items"], \
                f"order {order['status']}, {len(cart['items'])} lines left in the cart"

        return wait_for("the order's confirmation and the cart's removal", confirmed, self.timeout)

    def wait_until_notified(self) -> str:
        def sent() -> tuple[bool, str]:
            page = expect(self.client.get("/notifications", params={"order_id": self.order["id"]},
                                          headers=self.admin), 200)
            entries = [{key: item[key] for key in ("channel", "recipient", "status", "last_error")}
                       for item in page["items"]]
            if any(entry["status"] == "rejected" for entry in entries):
                raise StepFailed(f"the confirmation was rejected: {entries}")
            return any(entry["status"] == "sent" for entry in entries), f"ledger entries {entries or 'none yet'}"

        return wait_for("the confirmation in the ledger", sent, self.timeout)

    def take_product_off_sale(self) -> str:
        product = expect(self.client.patch(f"/products/{self.product['id']}", headers=self.admin,
                                           json={"is_active": False}), 200)
        return f"{product['sku']} is_active={product['is_active']}"


def tokens() -> tuple[str, str, str]:
    """(admin token, user token, user id): given ones first, else minted with the shop's secret."""
    admin, user = os.environ.get("ADMIN_TOKEN"), os.environ.get("USER_TOKEN")
    if user:
        user_id = jwt.decode(user, options={"verify_signature": False})["sub"]
    else:
        user_id = f"smoke-{uuid.uuid4().hex[:8]}"
    return (admin or issue_token("smoke-admin", "admin", 900),
            user or issue_token(user_id, "customer", 900), user_id)


def run(base_url: str, timeout: float, out=sys.stdout) -> int:
    admin_token, user_token, user_id = tokens()
    email = os.environ.get("SMOKE_EMAIL") or f"{user_id}@example.com"
    print(f"smoke test of {base_url} as user {user_id} (waits up to {timeout:.0f} s each)", file=out, flush=True)
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=30.0) as client:
        journey = Journey(client, admin_token, user_token, user_id, email, timeout)
        steps = journey.steps()
        failed = False
        for number, (title, step) in enumerate(steps, start=1):
            if not _step(f"[{number}/{len(steps)}] {title}", step, out):
                failed = True
                break
        if journey.product is not None:  # the product is taken off sale even after a failure
            failed |= not _step("[cleanup] take the product off sale", journey.take_product_off_sale, out)
    print("smoke test FAILED" if failed else "smoke test passed", file=out, flush=True)
    return 1 if failed else 0


def _step(title: str, step: Callable[[], str], out) -> bool:
    print(f"{title} ...", end=" ", file=out, flush=True)
    started = time.monotonic()
    try:
        detail = step()
    except (StepFailed, httpx.HTTPError, KeyError, ValueError) as failure:
        print(f"FAILED after {time.monotonic() - started:.1f} s\n    {type(failure).__name__}: {failure}",
              file=out, flush=True)
        return False
    print(f"ok ({time.monotonic() - started:.1f} s): {detail}", file=out, flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base_url", help="the shop's public gateway, e.g. http://127.0.0.1:8080")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("SMOKE_TIMEOUT", "120")),
                        help="seconds each waiting step may take (default 120, or SMOKE_TIMEOUT)")
    options = parser.parse_args(argv)
    return run(options.base_url, options.timeout)


if __name__ == "__main__":
    sys.exit(main())
