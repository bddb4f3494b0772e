"""No secret and no personal data reaches a log line or a metrics page.

A shop of its own runs with canary values: a JWT secret and a database password (PostgreSQL trusts this machine,
so the password in DATABASE_URL is accepted and never checked), and a customer's e-mail, phone, card number,
street and name. The scenarios go through every kind of door: the catalog, the cart, orders paid by card, their
confirmations (e-mail and sms), notifications sent by an admin, the dead-letter sink, forged and malformed events,
bad tokens, bad inputs and functions misconfigured with the canaries. Then every line every process wrote, and the
/metrics page of every function, is searched for each canary, raw and in the encodings a leak would take.
"""

from __future__ import annotations

import base64
import json
import random
import time
import uuid
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from local.processes import free_port
from local.run import LocalShop
from local.token import hs256_settings, issue_token
from tests.support import function_alone, running_shop, sender_headers

CANARY = uuid.uuid4().hex[:10]
JWT_SECRET = f"canary-jwt-secret-{CANARY}-{uuid.uuid4().hex}"
DB_PASSWORD = f"canary-pw-{CANARY}"
SHORT_SECRET = f"cnry{CANARY}"  # too short to be a JWT secret: a misconfiguration
CARD_KEY = f"canary-card-fingerprint-key-{CANARY}-{uuid.uuid4().hex}"
TOKENS = hs256_settings({"canary": JWT_SECRET})
EMAIL = f"canary.{CANARY}@example.com"
PHONE = "+3361" + "".join(random.choices("0123456789", k=7))
STREET = f"{CANARY} Canary Street"
NAME = f"Canaryname{CANARY}"


def _luhn_card() -> str:
    digits = [4] + [random.randrange(10) for _ in range(14)]
    total = sum(d if i % 2 else sum(divmod(2 * d, 10)) for i, d in enumerate(reversed(digits)))
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


CARD = _luhn_card()
CANARIES = {"jwt secret": JWT_SECRET, "database password": DB_PASSWORD, "short secret": SHORT_SECRET,
            "card fingerprint key": CARD_KEY,
            "e-mail": EMAIL, "phone": PHONE, "card number": CARD, "street": STREET, "name": NAME}


def _base64_forms(value: bytes) -> set[str]:
    """The part of value's base64 that does not depend on what precedes it, at each of the three alignments."""
    forms = set()
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * shift + value).decode()
            forms.add(encoded[4 if shift else 0:-4])
    return {form for form in forms if len(form) >= 8}


def encodings(value: str) -> set[str]:
    forms = {value, value.lower(), quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1],
             value.lstrip("+"), " ".join(value[i:i + 4] for i in range(0, len(value), 4))}
    return forms | (_base64_forms(value.encode()) if len(value) >= 12 else set())


@pytest.fixture(scope="module")
def canary_shop(shop_settings, tmp_path_factory):
    scheme, rest = shop_settings["DATABASE_URL"].split("://", 1)
    settings = {**shop_settings, **TOKENS, "CARD_FINGERPRINT_KEY": CARD_KEY,
                "DATABASE_URL": f"{scheme}://postgres:{DB_PASSWORD}@{rest.split('@', 1)[-1]}"}
    with running_shop(settings, tmp_path_factory.mktemp("canary-logs")) as running:
        yield running


def _bearer(user: str, role: str = "customer", secret: str = JWT_SECRET, ttl: int = 600) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user, role, ttl, settings=hs256_settings({'canary': secret}))}"}


def _event(shop: LocalShop, name: str, data, event_type: str, event_id: str | None = None) -> httpx.Response:
    return httpx.post(shop.functions[name].url, json=data, timeout=15, headers={
        **sender_headers(name), "ce-specversion": "1.0", "ce-id": event_id or str(uuid.uuid4()), "ce-source": "/orders",
        "ce-type": event_type, "content-type": "application/json"})


def _order(user: str, sku: str, contact: dict) -> dict:
    return {"user_id": user, "contact": contact, "items": [{"product_sku": sku, "quantity": 1}],
            "shipping_address": {"street": STREET, "city": "Lyon", "postal_code": "69001", "country": "FR",
                                 "details": f"ask for {NAME}"},
            "payment": {"card_number": CARD, "expiry": "12/39", "cvv": "123"}}


def _journey(shop: LocalShop) -> None:
    admin, user = _bearer("canary-admin", "admin"), f"canary-user-{CANARY}"
    customer = _bearer(user)
    with httpx.Client(base_url=shop.url, timeout=20) as client:
        sku = f"CANARY-{CANARY}".upper()
        created = client.post("/products", headers=admin, json={
            "sku": sku, "name": "Canary Mug", "price": {"amount": "9.00", "currency": "EUR"}, "brand": "Bird",
            "stock_quantity": 50})
        assert created.status_code == 201, created.text
        assert client.get("/products").status_code == 200
        assert client.get("/search", params={"q": "canary mug"}).status_code == 200
        assert client.get(f"/products/{created.json()['id']}").status_code == 200
        assert client.post(f"/cart/{user}/items", headers=customer, json={"product_sku": sku, "quantity": 1}
                           ).status_code in (200, 201)
        assert client.get(f"/cart/{user}", headers=customer).status_code == 200
        orders = []
        for contact in ({"email": EMAIL}, {"phone": PHONE}):
            placed = client.post("/orders", headers={**customer, "Idempotency-Key": uuid.uuid4().hex},
                                 json=_order(user, sku, contact))
            assert placed.status_code == 201, placed.text
            orders.append(placed.json()["id"])
        assert client.get(f"/orders/details/{orders[0]}", headers=customer).status_code == 200
        assert client.get(f"/orders/{user}", headers=customer).status_code == 200
        for order_id in orders:
            _wait_for_notification(client, admin, order_id)
        assert client.post("/notifications", headers=admin, json={
            "type": "email", "recipient": EMAIL, "template_id": "welcome", "context": {"name": NAME}}).status_code == 202
        assert client.post("/notifications", headers=admin, json={
            "type": "sms", "recipient": PHONE, "body": f"{NAME}, your parcel waits at {STREET}"}).status_code == 202
        assert client.get("/notifications", headers=admin, params={"recipient": EMAIL}).status_code == 200

        # Bad tokens: the secret itself, a token signed with another key, an expired one, garbage.
        for headers in ({"Authorization": f"Bearer {JWT_SECRET}"}, _bearer(EMAIL, secret="x" * 40),
                        _bearer(user, ttl=-60), {"Authorization": f"Basic {EMAIL}:{CARD}"}):
            assert client.get(f"/orders/{user}", headers=headers).status_code == 401
        # Bad inputs that carry personal data.
        bad = _order(user, sku, {"email": EMAIL})
        bad["payment"]["expiry"] = "01/20"
        for body in (bad, {**bad, "contact": {"phone": f"{PHONE}x"}}):
            refused = client.post("/orders", headers={**customer, "Idempotency-Key": uuid.uuid4().hex}, json=body)
            assert refused.status_code == 422, refused.text
        assert client.post("/orders", headers={**customer, "Idempotency-Key": uuid.uuid4().hex,
                                               "content-type": "application/json"},
                           content=f'{{"card": "{CARD}", "email": "{EMAIL}"'.encode()).status_code == 400
        assert client.post("/notifications", headers=admin, json={
            "type": "sms", "recipient": f"00{PHONE[1:]}", "body": STREET}).status_code == 422

    # Events: a dead letter full of contact details, a forged malformed order.created, a wrong type.
    data = {"order_id": str(uuid.uuid4()), "user_id": user, "contact": {"email": EMAIL, "phone": PHONE},
            "shipping_address": {"street": STREET}, "card": CARD, "name": NAME}
    assert _event(shop, "notify-dead-letter", data, "com.example.shop.order.created").status_code == 200
    assert _event(shop, "notify-order-created", data,
                  "com.example.shop.order.created").status_code == 422
    assert _event(shop, "notify-order-created", data, "com.example.forged").status_code == 422
    shop.tick_relay()


def _wait_for_notification(client: httpx.Client, admin: dict, order_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items = client.get("/notifications", headers=admin, params={"order_id": order_id}).json()["items"]
        if items and items[0]["status"] == "sent":
            return
        time.sleep(0.2)
    raise AssertionError(f"no notification sent for order {order_id}")


def _misconfigured(shop: LocalShop, log_dir: Path) -> list[str]:
    """Functions started with a wrong setting holding a canary; each answers 503 naming the variable."""
    details = []
    wrong_url = {"DATABASE_URL": f"pgsql://:{DB_PASSWORD}@db"}  # short: pydantic shortens long values it shows
    cases = [("orders-get-order", wrong_url, "GET", f"/orders/details/{uuid.uuid4()}"),
             ("notify-order-created", wrong_url, "POST", "/"),
             ("cart-get-cart", hs256_settings({"canary": SHORT_SECRET}), "GET", "/cart/someone")]
    for name, wrong, method, path in cases:
        settings = {**shop.settings, **wrong}
        with function_alone(name, settings, free_port(), log=log_dir / f"misconfigured-{name}.log") as running:
            for _ in range(2):  # every request fails the same way, and logs it
                answer = httpx.request(method, running.url + path, timeout=15, json={"contact": {"email": EMAIL}},
                                       headers={**(sender_headers(name) if name.startswith("notify") else _bearer("someone")), "ce-specversion": "1.0", "ce-id": "x",
                                                "ce-source": "/orders", "ce-type": "com.example.shop.order.created"})
                assert answer.status_code == 503 or (name == "notify-order-created" and answer.status_code >= 500)
            if answer.headers.get("content-type", "").startswith("application/problem+json"):
                details.append(answer.json()["detail"])
            metrics = httpx.get(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=10).text
            (log_dir / f"metrics-misconfigured-{name}.txt").write_text(metrics)
    return details


def test_no_canary_reaches_a_log_line_or_a_metrics_page(canary_shop, tmp_path):
    _journey(canary_shop)
    details = _misconfigured(canary_shop, tmp_path)
    assert "check DATABASE_URL" in details[0] and "check USER_TOKEN_HS256_KEYS" in details[-1], details
    pages = {}
    for name, (_, metrics_port) in canary_shop.function_ports.items():
        try:
            pages[name] = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        except httpx.ConnectError:  # a function serves its metrics from its first request on
            pass
    canary_shop.stop()  # every process has written its last line

    captured = {path.name: path.read_text(errors="replace")
                for directory in (canary_shop.log_dir, tmp_path) for path in directory.iterdir() if path.is_file()}
    captured |= {f"{name} /metrics": page for name, page in pages.items()}
    assert len(pages) >= 15 and sum(len(text) for text in captured.values()) > 10_000
    notify_log = captured["notify-order-created.log"]
    assert notify_log.count("notification sent") >= 2  # the scenarios reached the logs
    leaks = [f"{kind} ({form!r}) in {where}" for kind, value in CANARIES.items() for form in encodings(value)
             for where, text in captured.items() if form in text]
    assert not leaks, "\n".join(leaks)
