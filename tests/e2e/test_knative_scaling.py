"""`make up SCALING=knative`: functions start at zero, pay a cold start, scale out under concurrency, drain and scale
back to zero, hold at most a buffer of requests, and leave no process behind — through the real gateway, real
replicas and the real stores, with windows shortened through the SCALING_* settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest

from local import pids
from local.gateway import KEEPALIVE_SECONDS
from local.processes import ROOT
from local.run import RELAY_EVERY_SECONDS
from local.service_keys import KEYS_DIR_SETTING, KeySet
from local.shop import LocalShop
from shared.routes import route
from tests.e2e.test_local_runner import left_alive, runner_settings, start_runner  # noqa: F401 (fixtures)
from tests.support import USER_TOKEN_SETTINGS, assert_problem

FUNCTION = "catalog-list-products"
SHORT = {"SCALING_STABLE_WINDOW_SECONDS": "6", "SCALING_SCALE_TO_ZERO_GRACE_SECONDS": "2"}
WAIT = 90  # seconds any condition may take on a loaded machine


@contextmanager
def knative_shop(shop_settings, tmp_path, **scaling: str):
    shop = LocalShop.on_free_ports({**shop_settings, **SHORT, **scaling}, log_dir=tmp_path / "logs",
                                   routes=(route(FUNCTION),), scaling="knative")
    try:
        shop.start()
        with httpx.Client(base_url=shop.url, timeout=60) as client:
            yield shop, client
    finally:
        shop.stop()


def scaling(client: httpx.Client) -> dict:
    return client.get("/_local/scaling").json()["functions"][FUNCTION]


def wait_for(client: httpx.Client, condition, what: str, timeout: float = WAIT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = scaling(client)
        if condition(state):
            return state
        assert time.monotonic() < deadline, f"waited {timeout}s for {what}; last state: {state}"
        time.sleep(0.1)


@contextmanager
def sustained_load(url: str, clients: int):
    """`clients` callers, each sending the next request as soon as the last one answered."""
    stop, statuses = threading.Event(), []

    def call():
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                statuses.append(client.get(url).status_code)

    threads = [threading.Thread(target=call) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def signal_replicas(state: dict, signum: int) -> None:
    for replica in state["replicas"]:
        os.killpg(replica["pid"], signum)


def test_the_first_request_to_an_idle_function_succeeds_after_a_cold_start_and_is_counted(shop_settings, tmp_path):
    with knative_shop(shop_settings, tmp_path) as (shop, client):
        idle = scaling(client)

        first = client.get("/products")
        through_its_own_port = httpx.get(shop.service_url(FUNCTION) + "/products", timeout=30)

        after = scaling(client)
        assert (idle["ready"], idle["starting"], idle["cold_starts"], idle["replicas"]) == (0, 0, 0, [])
        assert first.status_code == 200 and through_its_own_port.status_code == 200
        assert after["cold_starts"] == 1 and after["ready"] == 1 and after["served"] == 2
        assert after["cold_start_seconds_total"] > 0
        metrics = client.get("/_local/metrics").text
        assert f'local_scaling_cold_starts_total{{function="{FUNCTION}"}} 1.0' in metrics


def test_sustained_concurrency_above_the_target_adds_replicas_up_to_the_cap_and_queues_past_it(shop_settings,
                                                                                              tmp_path):
    with knative_shop(shop_settings, tmp_path, SCALING_TARGET="1", SCALING_MAX_REPLICAS="4",
                      SCALING_MAX_REPLICAS_TOTAL="2") as (shop, client):
        seen = []
        with sustained_load(f"{shop.url}/products", clients=6) as statuses:
            state = wait_for(client, lambda s: seen.append(s["ready"] + s["starting"] + s["draining"])
                             or s["ready"] >= 2, "a second replica")
            time.sleep(3)  # a few more decisions, all wanting more than the cap allows
            capped = client.get("/_local/scaling").json()

        assert state["desired"] >= 2
        assert capped["functions"][FUNCTION]["desired"] > 2 and capped["replicas_total"] <= 2
        assert max(seen) <= 2
        assert statuses and set(statuses) == {200}  # past the cap requests queued; none was refused


def test_idleness_scales_to_zero_and_stops_the_process(shop_settings, tmp_path):
    with knative_shop(shop_settings, tmp_path) as (shop, client):
        assert client.get("/products").status_code == 200
        replica = scaling(client)["replicas"][0]

        state = wait_for(client, lambda s: s["replicas"] == [], "scale to zero")

        assert state["desired"] == 0 and state["ready"] == 0
        decisions = [json.loads(line)["message"] for line in (tmp_path / "logs" / "gateway.log").read_text().splitlines()
                     if '"shop.scaling"' in line]
        assert decisions[0] == f"scaling {FUNCTION}: a request at zero replicas; starting 1"
        assert decisions[-1].startswith(f"scaling {FUNCTION}: desired 0, running 0")
        assert len(decisions) == len(set(decisions)) <= 4  # one line per decision that changed something
        assert left_alive([pids.Recorded("replica", replica["pid"], pids.start_time(replica["pid"]) or 0)],
                          within=10) == []
        assert client.get("/products").status_code == 200  # and the next request starts one again
        assert scaling(client)["cold_starts"] == 2


def test_in_flight_requests_survive_scale_down(shop_settings, tmp_path):
    with knative_shop(shop_settings, tmp_path, SCALING_TARGET="2", SCALING_MAX_REPLICAS="2") as (shop, client):
        with sustained_load(f"{shop.url}/products", clients=6):
            wait_for(client, lambda s: s["ready"] == 2, "two replicas")
        two = wait_for(client, lambda s: s["in_flight"] == 0, "the load to end")
        time.sleep(KEEPALIVE_SECONDS + 1)  # the next requests take new connections, which a stopped process accepts
        signal_replicas(two, signal.SIGSTOP)  # each of the next two requests hangs on its own replica
        try:
            with ThreadPoolExecutor(2) as pool:
                hanging = [pool.submit(httpx.get, f"{shop.url}/products", timeout=90) for _ in range(2)]
                spread = wait_for(client, lambda s: s["in_flight"] == 2, "both requests in flight")
                draining = wait_for(client, lambda s: s["draining"] == 1, "one replica to be scaled down")
                signal_replicas(two, signal.SIGCONT)
                answers = [future.result() for future in hanging]
        finally:
            signal_replicas(two, signal.SIGCONT)

        assert sorted(replica["in_flight"] for replica in spread["replicas"]) == [1, 1]  # least in flight first
        assert draining["desired"] == 1
        assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
        wait_for(client, lambda s: len(s["replicas"]) == 1, "the drained replica to stop")


def test_container_concurrency_is_a_hard_limit_per_replica_and_the_rest_wait(shop_settings, tmp_path):
    with knative_shop(shop_settings, tmp_path, SCALING_CONTAINER_CONCURRENCY="1",
                      SCALING_MAX_REPLICAS="1") as (shop, client):
        assert client.get("/products").status_code == 200
        one = wait_for(client, lambda s: s["ready"] == 1 and s["in_flight"] == 0, "one idle replica")
        time.sleep(KEEPALIVE_SECONDS + 1)
        signal_replicas(one, signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(3) as pool:
                calls = [pool.submit(httpx.get, f"{shop.url}/products", timeout=90) for _ in range(3)]
                held = wait_for(client, lambda s: s["waiting"] == 2, "two requests held")
                signal_replicas(one, signal.SIGCONT)
                answers = [call.result() for call in calls]
        finally:
            signal_replicas(one, signal.SIGCONT)

        assert held["in_flight"] == 1 and held["replicas"][0]["in_flight"] == 1
        assert [answer.status_code for answer in answers] == [200, 200, 200]


def test_past_the_buffer_requests_get_503_with_retry_after(shop_settings, tmp_path):
    with knative_shop(shop_settings, tmp_path, SCALING_BUFFER="2") as (shop, client):
        with ThreadPoolExecutor(8) as pool:  # all at once, while the first replica is still starting
            answers = list(pool.map(lambda _: httpx.get(f"{shop.url}/products", timeout=60), range(8)))

        refused = [answer for answer in answers if answer.status_code == 503]
        assert refused, [answer.status_code for answer in answers]
        assert {answer.status_code for answer in answers} == {200, 503}
        for answer in refused:
            assert_problem(answer, 503)
            assert int(answer.headers["Retry-After"]) >= 1
        assert scaling(client)["rejected"] == len(refused)


def test_a_crashed_replica_is_replaced(shop_settings, tmp_path):
    with knative_shop(shop_settings, tmp_path) as (shop, client):
        assert client.get("/products").status_code == 200
        crashed = scaling(client)["replicas"][0]["pid"]

        os.killpg(crashed, signal.SIGKILL)

        state = wait_for(client, lambda s: s["ready"] == 1 and s["replicas"][0]["pid"] != crashed, "a new replica")
        assert state["crashes"] == 1
        assert client.get("/products").status_code == 200


@pytest.mark.usefixtures("runner_settings")
def test_killing_the_knative_runner_leaves_no_process(start_runner):  # noqa: F811
    runner = start_runner(SCALING="knative", LOCAL_FUNCTIONS=FUNCTION)
    runner.wait_until_up()
    assert httpx.get(f"{runner.gateway_url}/products", timeout=60).status_code == 200
    started = runner.processes()
    assert any("functions-framework" in process.name for process in started), started

    runner.process.kill()

    assert left_alive(started, within=10) == []


def test_under_the_global_cap_an_idle_function_at_desired_zero_gives_way_to_one_holding_requests(shop_settings,
                                                                                               tmp_path):
    # One replica in all, and a grace period far longer than the wait: without giving way, the second function's
    # request would wait out SCALING_WAIT_SECONDS and get 503.
    other = "catalog-search-products"
    shop = LocalShop.on_free_ports({**shop_settings, **SHORT, "SCALING_MAX_REPLICAS_TOTAL": "1",
                                    "SCALING_SCALE_TO_ZERO_GRACE_SECONDS": "600", "SCALING_WAIT_SECONDS": "60"},
                                   log_dir=tmp_path / "logs", routes=(route(FUNCTION), route(other)),
                                   scaling="knative")
    try:
        shop.start()
        with httpx.Client(base_url=shop.url, timeout=90) as client:
            assert client.get("/products").status_code == 200
            searched = client.get("/search", params={"q": "mug"})
            state = client.get("/_local/scaling").json()["functions"]
    finally:
        shop.stop()

    assert searched.status_code == 200, searched.text
    assert state[other]["ready"] == 1 and state[FUNCTION]["ready"] == 0


def test_the_whole_journey_runs_from_zero_in_knative_mode(shop_settings, tmp_path):
    # Every function starts at zero (or kept warm), finds its peers and the broker through the gateway, and signs
    # with this run's keys: `make smoke` walks catalog, cart, order and notification as against `make up`.
    keys = {KEYS_DIR_SETTING: str(KeySet.generate().save(tmp_path / "keys"))}
    # With the PingSources `make up` runs (the relay, the sweep): an order's event whose first delivery timed out
    # while the notifier started from zero is delivered again by the relay, as on a cluster.
    shop = LocalShop.on_free_ports({**shop_settings, **keys}, log_dir=tmp_path / "logs", scaling="knative",
                                   relay_every=RELAY_EVERY_SECONDS)
    try:
        shop.start()
        env = {key: value for key, value in os.environ.items() if key not in ("ADMIN_TOKEN", "USER_TOKEN")}
        result = subprocess.run([sys.executable, "-m", "local.smoke", shop.url, "--timeout", "60"], cwd=ROOT,
                                env={**env, **USER_TOKEN_SETTINGS}, capture_output=True, text=True, timeout=300)
    finally:
        shop.stop()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke test passed" in result.stdout
