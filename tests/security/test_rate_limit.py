"""Public routes are rate limited per route, as the route table declares: the local gateway refuses a burst past
the bucket with 429 problem+json and Retry-After and serves again once the bucket refills, and the Istio local rate
limit generated for the cluster carries the same buckets."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time

import httpx
import pytest

from local.deploy import knative, ratelimit
from local.limits import RouteLimits
from local.processes import free_port, spawn, stop, wait_for_port
from shared.errors import TooManyRequests
from shared.routes import public_routes, route
from tests.support import assert_problem


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("limited", public_routes(), ids=lambda limited: limited.name)
def test_every_public_route_takes_its_burst_then_refuses_until_its_bucket_refills(limited):
    clock = FakeClock()
    limits = RouteLimits([limited], enabled=True)
    limits.buckets[limited.name].clock = clock
    limits.buckets[limited.name].updated = clock.now
    for _ in range(limited.rate_limit.burst):
        limits.check(limited)
    with pytest.raises(TooManyRequests) as refused:
        limits.check(limited)
    assert refused.value.headers["Retry-After"] == str(max(1, math.ceil(1 / limited.rate_limit.per_second)))
    clock.now += 1 / limited.rate_limit.per_second + 1e-9
    limits.check(limited)  # one token back
    with pytest.raises(TooManyRequests):
        limits.check(limited)


def test_reads_are_more_generous_than_anonymous_search_and_placing_orders():
    search, orders = route("catalog-search-products").rate_limit, route("orders-create-order").rate_limit
    reads = route("catalog-get-product").rate_limit
    assert search.per_second < reads.per_second and orders.per_second < reads.per_second
    assert all(r.rate_limit is not None for r in public_routes())


@pytest.fixture(scope="module")
def limited_gateway(shop):
    """A second gateway in front of the session's functions, with the rate limits on."""
    port = free_port()
    env = {**os.environ, **shop.settings, "GATEWAY_RATE_LIMITS": "on", "HOST": "127.0.0.1", "PORT": str(port),
           "GATEWAY_UPSTREAMS": json.dumps({name: running.url for name, running in shop.functions.items()})}
    process = spawn([sys.executable, "-m", "local.gateway"], env, subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop([process])


async def _burst(url: str, method: str, path: str, count: int, **options) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=count)) as client:
        return await asyncio.gather(*(client.request(method, path, **options) for _ in range(count)))


@pytest.mark.parametrize("name, method, path, options", [
    ("catalog-search-products", "GET", "/search", {"params": {"q": "mug"}}),
    ("orders-create-order", "POST", "/orders", {"json": {}}),  # anonymous: the function answers 401
])
def test_a_burst_past_the_bucket_gets_429_with_retry_after_then_the_route_serves_again(limited_gateway, name,
                                                                                     method, path, options):
    limit = route(name).rate_limit
    answers = asyncio.run(_burst(limited_gateway, method, path, 2 * limit.burst + 10, **options))
    refused = [answer for answer in answers if answer.status_code == 429]
    assert refused and len(answers) - len(refused) >= limit.burst  # the burst passes; only what exceeds it is refused
    for answer in refused:
        assert "too-many-requests" in assert_problem(answer, 429)["type"]
        assert int(answer.headers["Retry-After"]) >= 1
    time.sleep(int(refused[-1].headers["Retry-After"]))
    again = httpx.request(method, limited_gateway + path, **options)
    assert again.status_code != 429, again.text


def test_the_session_gateway_has_its_rate_limits_off(gateway):
    answers = asyncio.run(_burst(str(gateway.base_url), "GET", "/search", route("catalog-search-products")
                                 .rate_limit.burst + 5, params={"q": "mug"}))
    assert all(answer.status_code != 429 for answer in answers)


def test_the_istio_local_rate_limit_gives_every_public_route_its_bucket():
    document = ratelimit.envoy_filter()
    gateway, virtual_service = knative.routing()
    assert document["kind"] == "EnvoyFilter" and document["metadata"]["namespace"] == "istio-system"
    assert document["spec"]["workloadSelector"]["labels"] == gateway["spec"]["selector"]
    patches = document["spec"]["configPatches"]
    inserted = [p for p in patches if p["applyTo"] == "HTTP_FILTER"]
    assert [p["patch"]["value"]["name"] for p in inserted] == [ratelimit.FILTER]
    routes = {p["match"]["routeConfiguration"]["vhost"]["route"]["name"]: p for p in patches
              if p["applyTo"] == "HTTP_ROUTE"}
    assert set(routes) == {r.name for r in public_routes()} == {h["name"] for h in virtual_service["spec"]["http"]}
    host = gateway["spec"]["servers"][0]
    for limited in public_routes():
        patch = routes[limited.name]
        assert patch["match"]["routeConfiguration"]["vhost"]["name"] == f"{host['hosts'][0]}:{host['port']['number']}"
        config = patch["patch"]["value"]["typed_per_filter_config"][ratelimit.FILTER]
        bucket = config["token_bucket"]
        assert bucket["max_tokens"] == limited.rate_limit.burst
        per_second = bucket["tokens_per_fill"] / float(bucket["fill_interval"].rstrip("s"))
        assert per_second == pytest.approx(limited.rate_limit.per_second, rel=0.05)
        assert config["filter_enforced"]["default_value"] == {"numerator": 100, "denominator": "HUNDRED"}
        headers = {h["header"]["key"]: h["header"]["value"] for h in config["response_headers_to_add"]}
        assert headers["retry-after"] == str(max(1, math.ceil(1 / limited.rate_limit.per_second)))
    mapper = next(p for p in patches if p["applyTo"] == "NETWORK_FILTER")["patch"]["value"]["typed_config"][
        "local_reply_config"]["mappers"][0]
    assert mapper["filter"]["status_code_filter"]["comparison"]["value"]["default_value"] == 429
    assert mapper["body_format_override"]["content_type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= mapper["body_format_override"]["json_format"].keys()
