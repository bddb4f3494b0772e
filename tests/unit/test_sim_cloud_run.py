"""Cloud Run bills instance time, shared by the requests an instance handles at once."""

import math

import numpy as np
import pytest

from bench.cost import model
from bench.sim import cloudrun, config
from bench.sim.inputs import EndpointInputs

SHEET = {"name": "run", "kind": "request-based", "vcpu_second": 0.000024, "gib_second": 0.0000025,
         "per_million_requests": 0.4, "rounding_seconds": 0.1,
         "free_tier_per_month": {"vcpu_seconds": 0, "gib_seconds": 0, "requests": 0}}


def knobs(container_concurrency=80):
    return model.Knobs(target=56, container_concurrency=container_concurrency, min_scale=0, cpu_request=0.1,
                       cpu_limit=1.0, memory_request_gib=0.125, memory_limit_gib=0.25)


def measured(latency=0.05, cpu=0.002):
    return model.Measured("f", 1000, 0, 0, cpu * 1000, latency, latency, latency, latency, 50 * 2**20)


def test_two_concurrent_requests_on_one_instance_are_billed_once():
    together = cloudrun.billable_seconds([(10.0, 10.05), (10.01, 10.06)])
    apart = cloudrun.billable_seconds([(10.0, 10.05), (20.0, 20.05)])

    assert together == pytest.approx(0.1)
    assert apart == pytest.approx(0.2)


def test_billing_runs_in_100_ms_steps_while_the_instance_is_busy():
    assert cloudrun.billable_seconds([(0.0, 0.25)]) == pytest.approx(0.3)
    # a request arriving inside an already billed step joins it; one that outlasts the step adds steps
    assert cloudrun.billable_seconds([(0.0, 0.02), (0.09, 0.15)]) == pytest.approx(0.2)
    assert cloudrun.billable_seconds([(0.0, 0.02), (0.5, 0.52)]) == pytest.approx(0.2)
    assert cloudrun.billable_seconds([]) == 0


@pytest.mark.parametrize("service_time", [0.005, 0.02, 0.15, 0.3, 1.0])
@pytest.mark.parametrize("rate", [1, 5, 20, 200])
def test_the_expected_billing_matches_exact_billing_of_poisson_arrivals(service_time, rate):
    rng = np.random.default_rng(11)
    seconds = min(3000, 100_000 // rate)
    starts = np.sort(rng.uniform(0, seconds, rng.poisson(rate * seconds)))
    exact = cloudrun.billable_seconds(list(zip(starts, starts + service_time))) / seconds

    expected = float(cloudrun.busy_billable(np.array([rate]), service_time)[0])
    assert expected == pytest.approx(exact, rel=0.08)
    assert model.busy_billed_seconds(rate, service_time, 0.1) == pytest.approx(expected)


def test_sparse_requests_each_pay_a_100_ms_step_and_busy_ones_share_it():
    sparse = model.request_based_seconds(measured(latency=0.02), knobs(), SHEET, rate=0.01)
    busy = model.request_based_seconds(measured(latency=0.02), knobs(), SHEET, rate=50)

    assert sparse == pytest.approx(0.1, rel=0.01)
    assert busy < 0.04


def test_cost_per_million_differs_by_endpoint_and_by_concurrency():
    light, heavy = measured(latency=0.02, cpu=0.001), measured(latency=0.1, cpu=0.02)
    per_million = {name: 1e6 * model.request_based_cost_per_request(result, knobs(), SHEET)
                   for name, result in (("light", light), ("heavy", heavy))}
    single = 1e6 * model.request_based_cost_per_request(measured(latency=0.1, cpu=0.001), knobs(1), SHEET)
    shared = 1e6 * model.request_based_cost_per_request(measured(latency=0.1, cpu=0.001), knobs(80), SHEET)

    fee = SHEET["per_million_requests"]
    assert per_million["heavy"] - fee > 5 * (per_million["light"] - fee)
    assert single - fee > 10 * (shared - fee)
    assert per_million["light"] < 2.86  # the old flat 100 ms per request


def service(container_concurrency=100):
    return config.from_manifest({"metadata": {"name": "probe"}, "spec": {"template": {"spec": {
        "containerConcurrency": container_concurrency, "containers": [{"resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}}]}}}})


def test_cloud_run_retires_an_instance_after_15_idle_minutes_and_starts_it_again_cold():
    arrivals = np.zeros(3000, dtype=np.int64)
    arrivals[[100, 500, 2500]] = 1
    run = cloudrun.simulate(arrivals, service(), EndpointInputs(0.02, 0.002, 0.05, 1.0), warm_start=False)

    assert run.cold_starts[[100, 500, 2500]].tolist() == [1, 0, 1]
    last_busy = int(np.flatnonzero(run.wanted[:2500])[-1])  # the request of second 500 ends in 501
    assert run.alive[last_busy + cloudrun.IDLE_RETENTION_SECONDS - 1] == 1
    assert run.alive[last_busy + cloudrun.IDLE_RETENTION_SECONDS] == 0
    assert run.waits["waited_share"] == pytest.approx(2 / 3)
    # three lone requests, two starts billed: 3 x 100 ms + 2 x (0.8 s + 1.0 s)
    assert run.billable_seconds.sum() == pytest.approx(3 * 0.1 + 2 * 1.8, rel=0.02)


def test_cloud_run_never_puts_more_requests_on_an_instance_than_the_manifest_allows():
    busy = np.full(600, 100)
    run = cloudrun.simulate(busy, service(container_concurrency=1), EndpointInputs(0.05, 0.001, 0.05, 1.0))

    assert run.concurrency == 1
    assert run.wanted.max() >= math.ceil(100 * 0.05 / 0.6)
