"""Schemathesis against the shop through the gateway, with every check and the stateful phase: what openapi.json
promises (fields, statuses, content types, headers, links) is what the server does.

Tokens are made the way callers get them (`make token`); customers' operations run as one shopper, whose id the
path and body parameters that name a user are pinned to, so that links lead from a product to a cart to an order.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from tests.support import USER_TOKEN_SETTINGS, unique

BIN = Path(sys.executable).parent
SHOPPER = "fuzzer"
SEED = "20261125"
EXAMPLES, STATEFUL_EXAMPLES = 8, 30  # per operation and phase, and stateful scenarios: about 45 s on two cores

# Statuses a schema-valid request may also get, beyond schemathesis's defaults (2xx, 3xx, 401, 403, 404, 409, 429,
# 5xx), for rules OpenAPI cannot express; each is described on its operation or field and documented.
CONFIG = """
[generation]
database = "none"
max-examples = {examples}

[parameters]  # a shopper's own cart and orders
"path.user_id" = "{shopper}"
"body.user_id" = "{shopper}"
"body.payment.card_number" = {{ dictionary = "cards", probability = 0.9 }}
"body.payment.expiry" = {{ dictionary = "expiries", probability = 0.9 }}
"body.stock_quantity" = {{ dictionary = "stocks", probability = 0.8 }}  # products worth adding to a cart
"body.quantity" = {{ dictionary = "quantities", probability = 0.8 }}
"body.product_sku" = {{ dictionary = "skus", probability = 0.8 }}  # a product that exists, in stock
"body.items[*].product_sku" = {{ dictionary = "skus", probability = 0.8 }}

# 413: a body over 64 KiB, which a schema cannot bound (a product with 20 images of 2048 characters may reach it)
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

[phases.stateful]
max-steps = 12

[phases.stateful.generation]
max-examples = {stateful_examples}

[dictionaries.cards]  # Luhn-valid numbers: the Luhn check is a rule OpenAPI cannot express
values = ["4242 4242 4242 4242", "4242424242424242", "5555-5555-5555-4444", "4000000000009995"]

[dictionaries.expiries]  # not in the past: another
values = ["12/99", "01/98"]

[dictionaries.skus]
values = ["{sku}"]

[dictionaries.stocks]
values = [1000, 1000000]

[dictionaries.quantities]
values = [1, 2]

[[operations]]  # catalog writes, the outbox and notifications are for admins
include-tag = ["catalog", "notify"]
headers = {{ Authorization = "Bearer {admin}" }}

[[operations]]
include-operation-id = ["orders-list-outbox", "orders-requeue-outbox"]
headers = {{ Authorization = "Bearer {admin}" }}

[[operations]]  # a shopper's own cart and orders
include-operation-id = ["cart-get-cart", "cart-clear-cart", "cart-add-item", "cart-set-item-quantity",
                        "cart-remove-item", "orders-list-orders"]
headers = {{ Authorization = "Bearer {customer}" }}

[[operations]]
include-operation-id = "orders-get-order"
headers = {{ Authorization = "Bearer {customer}" }}

[[operations]]  # 402: a declined card; 422: Luhn, expiry, one line per SKU, an empty cart, mixed currencies
include-operation-id = "orders-create-order"
headers = {{ Authorization = "Bearer {customer}" }}
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "402", "403", "404", "409", "413", "422", "5xx"]

[[operations]]  # 422: min_price above max_price
include-operation-id = "catalog-list-products"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "422", "5xx"]

[[operations]]  # 412/428: If-Match rules; 422: an Idempotency-Key sent again with another change
include-operation-id = "catalog-update-product"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "413", "412", "422", "428", "5xx"]

[[operations]]  # a cart is cleared, not deleted: after DELETE /cart/{{user_id}} it reads 200, empty or refilled
include-operation-id = "cart-get-cart"
checks.use_after_free.enabled = false

[[operations]]  # 422: a product not for sale, a line past 100 units, a cart past 50 lines, an Idempotency-Key reused
include-operation-id = "cart-add-item"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "413", "422", "5xx"]

[[operations]]  # 422: an email without subject nor template, a recipient not fitting its channel, no body nor template
include-operation-id = "notify-send-notification"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "413", "422", "5xx"]
"""


def _token(user: str, role: str) -> str:
    """A bearer token from `make token` (local.token), signed with the shop's key."""
    result = subprocess.run([sys.executable, "-m", "local.token", "--user", user, "--role", role],
                            env={**os.environ, **USER_TOKEN_SETTINGS}, capture_output=True, text=True,
                            check=True)
    return result.stdout.strip()


def _shop_with_a_product_and_an_order(url: str, admin: str, customer: str) -> str:
    """A product in stock (its SKU is returned) and one order of the shopper's: without them, generated carts and
    orders would only ever meet 404, and the links from the order history would lead nowhere."""
    sku = unique("FUZZ")
    product = {"sku": sku, "name": "Fuzzed Mug", "brand": "Acme", "price": {"amount": "4.50", "currency": "EUR"},
               "stock_quantity": 1_000_000}
    order = {"user_id": SHOPPER, "items": [{"product_sku": sku, "quantity": 1}],
             "shipping_address": {"street": "1 Main St", "city": "Lyon", "postal_code": "69001", "country": "FR"},
             "payment": {"card_number": "4242424242424242", "expiry": "12/99", "cvv": "123"}}
    with httpx.Client(base_url=url, timeout=10) as client:
        created = client.post("/products", headers={"Authorization": f"Bearer {admin}"}, json=product)
        ordered = client.post("/orders", json=order,
                              headers={"Authorization": f"Bearer {customer}", "Idempotency-Key": unique("key")})
    assert (created.status_code, ordered.status_code) == (201, 201), created.text + ordered.text
    return sku


def test_the_api_keeps_every_promise_of_its_document(shop):
    admin, customer = _token("ops", "admin"), _token(SHOPPER, "customer")
    sku = _shop_with_a_product_and_an_order(shop.url, admin, customer)
    config = CONFIG.format(admin=admin, customer=customer, shopper=SHOPPER, sku=sku, examples=EXAMPLES,
                           stateful_examples=STATEFUL_EXAMPLES)
    with tempfile.TemporaryDirectory(prefix="schemathesis-") as work:
        (Path(work) / "schemathesis.toml").write_text(config)
        command = [str(BIN / "st"), "--config-file", str(Path(work) / "schemathesis.toml"), "run",
                   f"{shop.url}/openapi.json", "--url", shop.url, "--checks", "all",
                   "--phases", "examples,coverage,fuzzing,stateful", "--seed", SEED, "--workers", "1",
                   "--no-color"]

        result = subprocess.run(command, capture_output=True, text=True, cwd=work, timeout=300)

    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout or " passed" in result.stdout, result.stdout[-3000:]
