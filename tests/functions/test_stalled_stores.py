"""A store that stops answering mid-request (paused, partitioned, stuck behind a lock) costs a request its store's
timeout, then a 503 with Retry-After: never a hang as long as the store's silence. Each stall here outlasts the
timeout by seconds and ends on its own, so nothing is left stopped if the test dies."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from local.processes import free_port, spawn, stop, wait_for_port
from shared.postgres import connect
from tests.support import assert_problem, bearer, function_alone, on_own_mongo, unique

STALL_SECONDS = 6  # past every store's timeout (1-1.5 s), and past the 5x Mongo socket timeout this once was


def timed_get(url: str, **kwargs) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(url, timeout=STALL_SECONDS + 10, **kwargs)
    return response, time.monotonic() - started


def test_a_mongodb_that_stops_answering_is_503_after_its_timeout(shop_settings):
    with on_own_mongo("catalog-get-product", {**shop_settings, "MONGODB_TIMEOUT_MS": "1500"}) as (client, read):
        url = f"{read.url}/products/"  # a new id each time: an answer may be cached (PRODUCT_CACHE_TTL_SECONDS)
        assert httpx.get(url + "a" * 24, timeout=10).status_code == 404  # connected, the pool warm
        client.admin.command("configureFailPoint", "failCommand", mode="alwaysOn", data={
            "failCommands": ["find"], "blockConnection": True, "blockTimeMS": STALL_SECONDS * 1000})
        stalled, elapsed = timed_get(url + "b" * 24)  # pymongo retries a read once: two timeouts
        client.admin.command("configureFailPoint", "failCommand", mode="off")
        afterwards = httpx.get(url + "c" * 24, timeout=10)

    assert_problem(stalled, 503)
    assert stalled.headers["retry-after"]
    assert elapsed < STALL_SECONDS - 1  # twice MONGODB_TIMEOUT_MS (1.5 s), not the stall
    assert afterwards.status_code == 404


def test_a_redis_that_stops_answering_is_503_after_its_timeout(shop_settings, tmp_path):
    port = free_port()
    server = spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", str(tmp_path), "--enable-debug-command", "local"])  # DEBUG SLEEP: a stall on demand
    user = unique("stalled")
    try:
        wait_for_port(port, server)
        settings = {**shop_settings, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        with function_alone("cart-get-cart", settings) as cart:
            url = f"{cart.url}/cart/{user}"
            assert httpx.get(url, params={"priced": "false"}, headers=bearer(user), timeout=10).status_code == 200
            stalling = spawn(["redis-cli", "-p", str(port), "DEBUG", "SLEEP", str(STALL_SECONDS)])
            time.sleep(0.3)  # the server is now asleep
            stalled, elapsed = timed_get(url, params={"priced": "false"}, headers=bearer(user))
            stalling.wait(timeout=STALL_SECONDS + 10)
    finally:
        stop([server])

    assert_problem(stalled, 503)
    assert stalled.headers["retry-after"]
    assert elapsed < STALL_SECONDS - 2  # REDIS_TIMEOUT_SECONDS (1 s), not the stall


def test_a_postgresql_statement_stuck_behind_a_lock_is_503_after_its_timeout(shop_settings, postgres_url, tmp_path):
    stuck_behind_a_lock(shop_settings, postgres_url, tmp_path)


def stuck_behind_a_lock(settings: dict[str, str], postgres_url: str, tmp_path) -> None:
    """A read stuck behind a table lock answers 503 after DATABASE_TIMEOUT_SECONDS, and the server cancels it too
    (direct: the connection's statement_timeout; through PgBouncer: its connect_query)."""
    owner = unique("stalled")
    with function_alone("orders-get-order", settings, log=tmp_path / "orders.log") as orders:
        url = f"{orders.url}/orders/details/{uuid.uuid4()}"
        assert httpx.get(url, headers=bearer(owner), timeout=10).status_code == 404  # connected, the pool warm
        blocker = connect(postgres_url, timeout=STALL_SECONDS + 10)
        try:
            # A lock no reader gets past, released when this connection's transaction ends.
            blocker.run("BEGIN")
            blocker.run("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
            stalled, elapsed = timed_get(url, headers=bearer(owner))
            still_waiting = _waiting_on_a_lock(blocker, seconds=3)  # the abandoned statement, if the server kept it
        finally:
            blocker.run("ROLLBACK")
            blocker.close()
        afterwards = httpx.get(url, headers=bearer(owner), timeout=10)

    assert_problem(stalled, 503)
    assert stalled.headers["retry-after"]
    assert elapsed < STALL_SECONDS - 2  # DATABASE_TIMEOUT_SECONDS (1.5 s), not the lock
    assert still_waiting == 0  # the server cancelled it too (statement_timeout): no backend left behind the lock
    assert afterwards.status_code == 404


def _waiting_on_a_lock(connection, seconds: float = 1.0) -> int:
    """How many of this database's backends still wait on a lock after `seconds` (0 as soon as none does)."""
    deadline = time.monotonic() + seconds
    while True:
        [[waiting]] = connection.run("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND wait_event_type = 'Lock'")
        if waiting == 0 or time.monotonic() > deadline:
            return waiting
        time.sleep(0.05)


def test_a_statement_the_server_cancels_at_its_statement_timeout_is_503_and_the_connection_kept(shop_settings,
                                                                                              postgres_url):
    from shared.errors import ServiceUnavailable
    from shared.postgres import Pool

    pool = Pool(postgres_url, timeout=STALL_SECONDS + 10, size=1, statement_timeout=0.5)  # the server gives up first
    blocker = connect(postgres_url, timeout=STALL_SECONDS + 10)
    try:
        blocker.run("BEGIN")
        blocker.run("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(ServiceUnavailable, match="did not answer in time"):
            with pool.connection() as connection:
                connection.run("SELECT count(*) FROM orders")
    finally:
        blocker.run("ROLLBACK")
        blocker.close()
    with pool.connection() as again:  # the cancelled statement left the connection usable
        assert again.run("SELECT count(*) FROM orders")[0][0] >= 0
