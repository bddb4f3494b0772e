"""LocalShop restarts a function that exits, with a backoff, however often it dies and whenever, and tells the
state of each function at the gateway's /_local/functions."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from local.shop import Backoff, LocalShop
from shared.routes import Route, route
from tests.support import assert_problem

QUICK = Backoff(base=0.05, cap=0.2)  # the same doubling, in tenths of seconds, so that ten exits take little time


def test_backoff_restarts_at_once_then_doubles_up_to_its_cap():
    backoff = Backoff(base=0.5, cap=30)

    delays = [backoff.delay(exits) for exits in range(1, 11)]

    assert delays == [0, 0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def wait_for(condition, timeout: float = 30, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"not within {timeout}s")


@pytest.fixture
def small_shop(shop_settings, tmp_path):
    """A shop of a few functions, stopped after the test."""
    shops = []

    def start(*routes: Route, backoff: Backoff = QUICK, require_all: bool = True) -> LocalShop:
        shop = LocalShop.on_free_ports(shop_settings, log_dir=tmp_path / "logs", routes=routes, backoff=backoff)
        shops.append(shop)
        shop.start(require_all=require_all)
        return shop

    yield start
    for shop in shops:
        shop.stop()


def test_a_function_sigkilled_during_its_own_start_ten_times_serves_again(small_shop):
    name = "catalog-get-product"
    shop = small_shop(route(name))
    killed = [shop.functions[name].process.pid]
    os.killpg(killed[0], signal.SIGKILL)

    for _ in range(10):
        process = wait_for(lambda: shop.states[name].state == "starting" and shop.functions[name].process.pid
                           not in killed and shop.functions[name].process)
        os.killpg(process.pid, signal.SIGKILL)  # before it listens: it takes far longer to start than to be seen
        killed.append(process.pid)
    wait_for(lambda: shop.states[name].state == "running")
    response = httpx.get(f"{shop.url}/products/{'a' * 24}", timeout=10)

    assert_problem(response, 404)  # served by the function, not a 503 from the gateway
    assert shop.states[name].restarts == 11
    assert shop.states[name].exits_in_a_row == 11
    assert shop.functions[name].process.pid not in killed


def test_a_function_that_cannot_start_is_reported_and_retried(small_shop, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import a_module_that_does_not_exist\n")
    shop = small_shop(route("catalog-list-products"),
                      Route("broken-function", "GET", "/broken", str(broken), "handler", "cannot start"),
                      backoff=Backoff(base=0.5, cap=1), require_all=False)

    def retried_and_waiting():
        functions = httpx.get(f"{shop.url}/_local/functions", timeout=5).json()["functions"]
        broken_state = functions["broken-function"]
        return broken_state["state"] == "failed-to-start" and broken_state["restarts"] >= 2 and functions

    functions = wait_for(retried_and_waiting, interval=0.05)
    state = functions["broken-function"]

    assert state["last_exit_code"] not in (None, 0)
    assert "exited with" in state["last_error"] and "ModuleNotFoundError" in state["last_error"]
    assert state["backoff_seconds"] in (0.5, 1)
    assert state["next_retry_at"] and 0 <= state["next_retry_in_seconds"] <= 1
    assert functions["catalog-list-products"]["state"] == "running"
    assert functions["catalog-list-products"]["pid"] == shop.functions["catalog-list-products"].process.pid


def test_a_shop_that_must_serve_every_function_names_the_one_that_cannot_start(shop_settings, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise SystemExit('this function cannot start')\n")
    shop = LocalShop.on_free_ports(shop_settings, log_dir=tmp_path / "logs",
                                   routes=(Route("broken-function", "GET", "/broken", str(broken), "handler", "-"),))
    try:
        with pytest.raises(RuntimeError, match="function broken-function did not start: exited with .* before "
                                               "listening: this function cannot start"):
            shop.start()
    finally:
        shop.stop()

    assert shop.functions["broken-function"].process.poll() is not None
    assert shop.gateway.poll() is not None


def test_an_explicit_restart_waits_until_the_function_serves(small_shop):
    name = "catalog-get-product"
    shop = small_shop(route(name))
    before = shop.functions[name].process

    shop.restart(name)

    assert before.poll() is not None
    assert shop.states[name].state == "running" and shop.states[name].restarts == 1
    assert_problem(httpx.get(f"{shop.url}/products/{'a' * 24}", timeout=10), 404)


def test_a_killed_gateway_is_started_again(small_shop):
    shop = small_shop(route("catalog-list-products"))
    killed = shop.gateway
    os.killpg(killed.pid, signal.SIGKILL)

    wait_for(lambda: shop.gateway is not killed and shop.gateway.poll() is None)
    response = wait_for(lambda: _get_or_none(f"{shop.url}/products?limit=1"), interval=0.05)

    assert response.status_code == 200


def _get_or_none(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None
