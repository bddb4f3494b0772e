"""Helpers the tests share: tokens (user, service and event sender), unique ids and the problem+json assertion."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from pathlib import Path
from contextlib import contextmanager

import httpx

from local.environment import sender_token
from local.ping import ping
from local.processes import free_port, start_function, stop, wait_for_port
from local.service_keys import allowed_caller_headers, process_keys
from local.token import hs256_settings, issue_token
from shared.routes import route
from shared.service_identity import SERVICE_TOKEN_HEADER, function_callers

RUN_ID = uuid.uuid4().hex[:8]
# The session shop's user-token settings (one HS256 key) and card-fingerprint key: random per run, like secrets.
TOKEN_KEY_ID = "test-1"
USER_TOKEN_SETTINGS = hs256_settings({TOKEN_KEY_ID: "test-secret-" + uuid.uuid4().hex})
CARD_FINGERPRINT_KEY = "test-card-fingerprint-" + uuid.uuid4().hex


def token(user_id: str, role: str = "customer", ttl_seconds: int = 3600) -> str:
    return issue_token(user_id, role, ttl_seconds, settings=USER_TOKEN_SETTINGS)


def bearer(user_id: str, role: str = "customer") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id, role)}"}


ADMIN = bearer("ops", "admin")


def service_headers(target: str, caller: str | None = None) -> dict[str, str]:
    """What a function allowed to call `target` (its first listed caller, unless named) sends it: the functions
    the tests start share this process's keys (local.service_keys.process_keys)."""
    caller = caller or function_callers(route(target))[0]
    return {SERVICE_TOKEN_HEADER: process_keys().service_token(caller, target)}


def sender_headers(target: str) -> dict[str, str]:
    """What the broker or PingSource delivering to `target` sends with each event."""
    return allowed_caller_headers(target)


def tick(name: str, url: str, timeout: float = 60) -> int:
    """Ping function `name` at `url` as its PingSource would; returns the HTTP status."""
    return ping(url, sender_token({}, route(name)), timeout=timeout)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def assert_problem(response: httpx.Response, status: int) -> dict:
    """The response is an RFC 9457 problem with `status`; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    return body


@contextmanager
def function_alone(name: str, settings: dict[str, str], metrics_port: int | None = None, log: Path | None = None):
    """One endpoint function in its own process, with its own settings (outages, attribution), stopped after
    (and, like every process started through local.processes, as soon as the test process dies); its output goes
    to `log` when given."""
    port = free_port()
    with open(log, "ab") if log else contextlib.nullcontext(subprocess.DEVNULL) as output:
        running = start_function(route(name), port, metrics_port, settings, output)
        try:
            wait_for_port(port, running.process)
            yield running
        finally:
            stop([running.process])


def answer_and_seconds(call) -> tuple[httpx.Response, float]:
    """`call()`'s answer and how long it took, after one call first (a first request also imports and connects)."""
    import time

    call()
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@contextmanager
def on_own_mongo(name: str, settings: dict[str, str]):
    """Function `name` alone against a migrated SecantusDB of its own with mongod's test commands (failpoints are
    server-wide, so never on the session's store); yields an admin client to that server and the function."""
    from pymongo import MongoClient

    from local.migrate import run_step
    from local.stores import start_mongo

    port = free_port()
    server = start_mongo(port, ":memory:", test_commands=True)
    settings = {**settings, "MONGODB_URL": f"mongodb://127.0.0.1:{port}"}
    try:
        run_step(settings)
        with MongoClient(settings["MONGODB_URL"]) as client, function_alone(name, settings) as running:
            yield client, running
    finally:
        stop([server])


@contextmanager
def caching_function(name: str, settings: dict[str, str], ttl: float):
    """A catalog read function alone with its per-instance cache on for `ttl` seconds, and a client to it: it
    reads the session's store while writes go through the gateway, i.e. another instance."""
    with function_alone(name, {**settings, "PRODUCT_CACHE_TTL_SECONDS": str(ttl)}) as running, \
            httpx.Client(base_url=running.url, timeout=10) as client:
        yield client


def caching_fixture(name: str, ttl: float):
    """A module-scoped fixture: `caching_function(name, …, ttl)`'s client, on the session's shop settings."""
    import pytest

    @pytest.fixture(scope="module")
    def fixture(shop_settings, shop):
        with caching_function(name, shop_settings, ttl) as client:
            yield client

    return fixture


@contextmanager
def running_shop(settings: dict[str, str], log_dir: Path, **options):
    """A whole LocalShop on free ports with these settings, stopped (every process) however the block ends."""
    from local.shop import LocalShop

    shop = LocalShop.on_free_ports(settings, log_dir=log_dir, **options)
    try:
        shop.start()
        yield shop
    finally:
        shop.stop()
