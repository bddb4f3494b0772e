"""`make up` runs with service identity on: fresh keys for the run, readable by this user only and gone when it
stops, and its functions call each other with service tokens signed with them."""

from __future__ import annotations

import signal
import stat
from pathlib import Path

import httpx

from local.service_keys import KeySet
from tests.e2e.test_local_runner import runner_settings, start_runner  # noqa: F401 - the runner's fixtures
from tests.support import ADMIN, bearer, unique

# A cart line is priced by catalog-lookup-products, which answers only its listed callers.
CHAIN = "catalog-create-product,catalog-lookup-products,cart-add-item"
LOOKUP = "/internal/products/lookup"


def test_make_up_signs_its_calls_with_keys_of_this_run_only(start_runner, runner_settings):  # noqa: F811
    runner = start_runner(LOCAL_FUNCTIONS=CHAIN)
    runner.wait_until_up()
    keys_dir = Path(runner_settings["LOCAL_DIR"]) / "run" / "keys"
    lookup = f"http://127.0.0.1:{runner.functions()['catalog-lookup-products']['port']}{LOOKUP}"
    sku, user = unique("RUN").upper(), unique("runner")

    created = httpx.post(f"{runner.gateway_url}/products", headers=ADMIN, timeout=10, json={
        "sku": sku, "name": "Run Mug", "price": {"amount": "2.00", "currency": "EUR"}, "brand": "Zero",
        "stock_quantity": 3})
    added = httpx.post(f"{runner.gateway_url}/cart/{user}/items", json={"product_sku": sku, "quantity": 1},
                       headers=bearer(user), timeout=10)
    keys = KeySet.load(keys_dir)
    without = httpx.get(lookup, params={"skus": sku}, timeout=10)
    with_this_runs_key = httpx.get(lookup, params={"skus": sku}, timeout=10, headers={
        "X-Service-Token": keys.service_token("cart-add-item", "catalog-lookup-products")})
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in keys_dir.glob("*.pem")}

    assert created.status_code == 201, created.text
    assert added.status_code in (200, 201), added.text  # cart-add-item reached the lookup with its token
    assert without.status_code == 401 and with_this_runs_key.status_code == 200
    assert "catalog-lookup-products.pem" in modes and set(modes.values()) == {0o600}
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700

    runner.process.send_signal(signal.SIGTERM)
    assert runner.process.wait(timeout=60) == 0, runner.text
    assert not keys_dir.exists()
