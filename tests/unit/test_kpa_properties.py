"""Properties of the simulated KPA (bench/sim/knative.py around kpa.scale) with Knative's defaults: target 70 % of
100, 60 s stable and 6 s panic windows, 2 s ticks, 30 s grace."""

import math

import numpy as np
import pytest

from bench.sim import config, knative, kpa
from bench.sim.inputs import EndpointInputs

ONE_SECOND = EndpointInputs(service_time=1.0, cpu_per_request=0.0, rss_gib=0.1, process_start=1.0)
SHORT = EndpointInputs(service_time=0.05, cpu_per_request=0.0, rss_gib=0.1, process_start=1.0)


def service(container_concurrency: int = 0, annotations: dict | None = None) -> config.ServiceConfig:
    return config.from_manifest({"metadata": {"name": "probe"}, "spec": {"template": {
        "metadata": {"annotations": annotations or {}},
        "spec": {"containerConcurrency": container_concurrency, "containers": [{}]}}}})


def test_the_defaults_aim_at_70_concurrent_requests_per_pod():
    for container_concurrency in (0, 100):
        probe = service(container_concurrency)
        assert probe.target == 70
        assert (probe.stable_window, probe.panic_window, probe.panic_threshold) == (60, 6, 2.0)


@pytest.mark.parametrize("concurrency", [1, 35, 69, 70, 71, 140, 141, 500, 1000, 5000])
@pytest.mark.parametrize("container_concurrency", [0, 100])
def test_at_steady_concurrency_pods_settle_at_ceil_c_over_70_within_one_stable_window(concurrency,
                                                                                       container_concurrency):
    # `concurrency` requests a second, each one second long, from a cold start at zero pods
    probe = service(container_concurrency)
    run = knative.simulate(np.full(900, concurrency), probe, ONE_SECOND, warm_start=False)

    steady_from = int(np.flatnonzero(np.isclose(run.concurrency, concurrency) & (run.queued == 0))[0])
    wanted = math.ceil(concurrency / 70)
    off = np.flatnonzero(run.ready_pods != wanted)
    settled_at = int(off[-1]) + 1 if len(off) else 0
    assert settled_at - steady_from <= probe.stable_window + kpa.TICK_SECONDS
    assert (run.ready_pods[settled_at:] == wanted).all()


@pytest.mark.parametrize("per_second", [0.2, 1, 20, 1000, 20000])
def test_after_the_last_request_pods_reach_zero_between_60_and_92_seconds(per_second):
    arrivals = np.zeros(900, dtype=np.int64)
    if per_second < 1:
        arrivals[:300:round(1 / per_second)] = 1
    else:
        arrivals[:300] = per_second
    run = knative.simulate(arrivals, service(100), SHORT)

    last = int(np.flatnonzero(arrivals)[-1])
    gone = int(np.flatnonzero((run.pods == 0) & (np.arange(len(arrivals)) > last))[0])
    assert 60 <= gone - last <= 92
    assert (run.pods[gone:] == 0).all()


@pytest.mark.parametrize("before", [35, 70, 140, 700])
@pytest.mark.parametrize("container_concurrency", [0, 100])
def test_a_tenfold_step_enters_panic_within_two_ticks_and_never_scales_down_in_panic(before, container_concurrency):
    step_at = 300
    arrivals = np.full(900, before)
    arrivals[step_at:] = 10 * before
    run = knative.simulate(arrivals, service(container_concurrency), ONE_SECOND)

    assert not run.panic[:step_at].any()
    panicking = np.flatnonzero(run.panic)
    assert panicking[0] < step_at + 2 * kpa.TICK_SECONDS
    for second in panicking:
        if run.panic[second - 1]:
            assert run.pods[second] >= run.pods[second - 1]
            assert run.desired_pods[second] >= run.desired_pods[second - 1]
    assert run.ready_pods[-1] == math.ceil(10 * before / 70)


def test_min_scale_keeps_pods_through_a_quiet_day():
    arrivals = np.zeros(3600, dtype=np.int64)
    arrivals[100] = 1
    run = knative.simulate(arrivals, service(100, {"autoscaling.knative.dev/min-scale": "2"}), SHORT)

    assert (run.pods >= 2).all()
    assert run.cold_starts.sum() == 0


def test_a_request_at_zero_pods_waits_for_the_cold_start():
    arrivals = np.zeros(600, dtype=np.int64)
    arrivals[300] = 1
    run = knative.simulate(arrivals, service(100), SHORT, pod_start=0.8)

    assert run.cold_starts.sum() == 1
    assert run.waits["waited_share"] == pytest.approx(1)
    # poked at the arrival (half a second in, for one request), ready 0.8 s + 1.0 s later
    assert run.waits["waiting_p50_ms"] == pytest.approx(1800, abs=20)


def test_scale_down_delay_holds_pods_after_a_drop():
    arrivals = np.full(1200, 700)
    arrivals[600:] = 70
    delayed = knative.simulate(arrivals, service(100, {"autoscaling.knative.dev/scale-down-delay": "2m"}), ONE_SECOND)
    prompt = knative.simulate(arrivals, service(100), ONE_SECOND)

    assert prompt.ready_pods[600 + 90] < 10
    assert delayed.ready_pods[600 + 90] == 10
    assert delayed.ready_pods[-1] == prompt.ready_pods[-1] == 1
