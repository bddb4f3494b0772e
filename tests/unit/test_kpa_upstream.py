"""Knative's own test cases for `Scale`, ported from knative/serving pkg/autoscaler/scaling/autoscaler_test.go with
the same inputs and the same expected desired pods (and excess burst capacity, within upstream's ±1).

Upstream builds its test autoscalers with `newTestAutoscaler(target, targetBurstCapacity, metrics)`: total value =
target / 0.75, panic threshold 2 (200 %), max scale up and down rates 10, stable window 60 s, reachable, one ready
pod when created. `spec()` and `state()` below do the same; the fake metric client's stable and panic values are
passed straight to `kpa.scale`.

Ported (all their Scale assertions): TestAutoscalerScaleDownDelay (both subtests), TestAutoscalerScaleDownDelayZero,
TestAutoscalerNoDataNoAutoscale, TestAutoscalerMetrics and TestAutoscalerMetricsWithRPS (their ScaleResult; the
metric values they record are not modelled), TestAutoscalerStableModeIncreaseWithConcurrencyDefault,
TestAutoscalerStableModeIncreaseWithRPS, TestAutoscalerUnpanicAfterSlowIncrease, TestAutoscalerExtendPanicWindow,
TestAutoscalerStableModeDecrease, TestAutoscalerStableModeNoTrafficScaleToZero, TestAutoscalerActivationScale,
TestAutoscalerPanicModeExponentialTrackAndStabilize, every row of TestAutoscalerScale,
TestAutoscalerPanicThenUnPanicScaleDown, TestAutoscalerRateLimitScaleUp, TestAutoscalerRateLimitScaleDown,
TestAutoscalerUseOnePodAsMinimumIfEndpointsNotFound, TestAutoscalerUpdateTarget, TestStartInPanicMode.

Left out, and why:
- TestAutoscalerScaleDownDelayNotReachable: it expects a revision that becomes unreachable to drop its delay window
  at once, which the upstream autoscaler.go versions read for this port do not do (they record into the window
  whatever the reachability); our services each have one routed revision, always reachable.
- TestAutoscalerStartMetrics: only checks the OpenTelemetry gauges recorded at creation; no decision.
- TestCantCountPods and TestNewFail: the Kubernetes pod lister failing; the simulation always knows its pods.
- TestPausingCollection: pausing the metric scraper, which is not part of the decision.
- BenchmarkAutoscaler: a Go benchmark.
"""

import math

import pytest

from bench.sim import kpa

NOW = 1_000_000.0  # upstream uses time.Now(); any instant works
STABLE_WINDOW = 60.0
TARGET_UTILIZATION = 0.75


def spec(target: float, burst: float, **changes) -> kpa.DeciderSpec:
    """newTestAutoscalerWithScalingMetric's DeciderSpec."""
    values = {"target_value": target, "total_value": target / TARGET_UTILIZATION, "target_burst_capacity": burst,
              "panic_threshold": 2.0, "max_scale_up_rate": 10.0, "max_scale_down_rate": 10.0,
              "stable_window": STABLE_WINDOW, "reachable": True}
    return kpa.DeciderSpec(**(values | changes))


def state(ready_pods: int = 1) -> kpa.DeciderState:
    return kpa.initial_state(ready_pods, NOW)


def expected_ebc(total_capacity: float, burst: float, recorded: float, pods: float) -> int:
    """autoscaler_test.go expectedEBC."""
    return math.floor(total_capacity / TARGET_UTILIZATION * pods - burst - recorded)


def expect(result: kpa.ScaleResult, desired: int, ebc: int, valid: bool = True) -> None:
    assert result.desired_pods == desired
    assert result.valid is valid
    assert abs(result.excess_burst_capacity - ebc) <= 1  # upstream's approxEquateInt32


def test_autoscaler_scale_down_delay():
    delayed = kpa.DeciderSpec(target_value=10, total_value=0, target_burst_capacity=0, max_scale_down_rate=10,
                              max_scale_up_rate=10, panic_threshold=100, scale_down_delay=300, reachable=True)
    current = kpa.initial_state(0, 0.0)
    # simple: scale up, then 5 minutes at reduced concurrency do not scale down, 5 min 2 s do
    result, current = kpa.scale(2, 40, 40, 0, delayed, current)
    expect(result, 4, 0)
    result, current = kpa.scale(300, 0, 0, 0, delayed, current)
    expect(result, 4, 0)
    result, current = kpa.scale(302, 0, 0, 0, delayed, current)
    expect(result, 0, 0)
    # gradual
    result, current = kpa.scale(540, 40, 40, 0, delayed, current)
    expect(result, 4, 0)
    result, current = kpa.scale(600, 30, 30, 0, delayed, current)
    expect(result, 4, 0)  # 4 still dominates
    result, current = kpa.scale(660, 0, 0, 0, delayed, current)
    expect(result, 4, 0)  # still at 4
    result, current = kpa.scale(840, 0, 0, 0, delayed, current)
    expect(result, 3, 0)  # 4 scrolls out, drop to 3
    result, current = kpa.scale(900, 0, 0, 0, delayed, current)
    expect(result, 0, 0)  # everything scrolled out, drop to 0


def test_autoscaler_scale_down_delay_zero():
    undelayed = kpa.DeciderSpec(target_value=10, total_value=0, target_burst_capacity=0, max_scale_down_rate=10,
                                max_scale_up_rate=10, panic_threshold=100, scale_down_delay=0, reachable=False)
    result, current = kpa.scale(NOW, 40, 40, 0, undelayed, kpa.initial_state(0, NOW))
    expect(result, 4, 0)
    # with zero delay the next decision scales down at once (unlike a 1-element window)
    result, _ = kpa.scale(NOW + 0.5, 20, 20, 0, undelayed, current)
    expect(result, 2, 0)


def test_autoscaler_no_data_no_autoscale():
    result, _ = kpa.scale(NOW, None, None, 1, spec(10, 100), state())
    expect(result, 0, 0, valid=False)


def test_autoscaler_metrics():
    result, _ = kpa.scale(NOW, 50, 50, 1, spec(10, 100), state())
    expect(result, 5, expected_ebc(10, 100, 50, 1))


def test_autoscaler_metrics_with_rps():
    result, _ = kpa.scale(NOW + 61, 100, 99, 1, spec(10, 100), state())
    expect(result, 10, expected_ebc(10, 100, 99, 1))


def test_autoscaler_stable_mode_increase_with_concurrency_default():
    decider, current = spec(10, 101), state()
    result, current = kpa.scale(NOW, 50, 10, 1, decider, current)
    expect(result, 5, expected_ebc(10, 101, 10, 1))
    result, _ = kpa.scale(NOW, 100, 10, 1, decider, current)
    expect(result, 10, expected_ebc(10, 101, 10, 1))


def test_autoscaler_stable_mode_increase_with_rps():
    decider, current = spec(10, 101), state()
    result, current = kpa.scale(NOW, 50, 50, 1, decider, current)
    expect(result, 5, expected_ebc(10, 101, 50, 1))
    result, _ = kpa.scale(NOW, 100, 99, 1, decider, current)
    expect(result, 10, expected_ebc(10, 101, 99, 1))


def test_autoscaler_unpanic_after_slow_increase():
    decider = spec(1, 98)
    result, current = kpa.scale(NOW, 11, 25, 10, decider, state())  # initial jump from 10 to 25 pods
    expect(result, 25, expected_ebc(1, 98, 25, 10))
    assert current.panic_time == NOW
    # half a stable window later, one pod added per cycle: +15
    result, current = kpa.scale(NOW + 30, 30, 41, 40, decider, current)
    expect(result, 41, expected_ebc(1, 98, 41, 40))
    assert current.panic_time == NOW  # panic time did not move
    # at the end panic must end, and +30 pods
    result, current = kpa.scale(NOW + 62, 50, 56, 55, decider, current)
    expect(result, 50, expected_ebc(1, 98, 56, 55))
    assert current.panic_time is None


def test_autoscaler_extend_panic_window():
    decider = spec(1, 98)
    result, current = kpa.scale(NOW, 11, 25, 10, decider, state())
    expect(result, 25, expected_ebc(1, 98, 25, 10))
    assert current.panic_time == NOW
    # half a stable window later, still surging
    result, current = kpa.scale(NOW + 30, 30, 80, 40, decider, current)
    expect(result, 80, expected_ebc(1, 98, 80, 40))
    assert current.panic_time == NOW + 30


def test_autoscaler_stable_mode_decrease():
    decider = spec(10, 98)
    result, current = kpa.scale(NOW, 100, 100, 8, decider, state())
    expect(result, 10, expected_ebc(10, 98, 100, 8))
    result, _ = kpa.scale(NOW, 50, 50, 8, decider, current)
    expect(result, 5, expected_ebc(10, 98, 50, 8))


def test_autoscaler_stable_mode_no_traffic_scale_to_zero():
    decider = spec(10, 75)
    result, current = kpa.scale(NOW, 1, 0, 1, decider, state())
    expect(result, 1, expected_ebc(10, 75, 0, 1))
    result, _ = kpa.scale(NOW, 0, 0, 1, decider, current)
    expect(result, 0, expected_ebc(10, 75, 0, 1))


def test_autoscaler_activation_scale():
    decider = spec(10, 75, activation_scale=2)
    result, current = kpa.scale(NOW, 0, 0, 1, decider, state())
    expect(result, 0, expected_ebc(10, 75, 0, 1))
    result, _ = kpa.scale(NOW, 1, 0, 1, decider, current)
    expect(result, 2, expected_ebc(10, 75, 0, 1))


def test_autoscaler_panic_mode_exponential_track_and_stabilize():
    decider = spec(1, 101)
    result, current = kpa.scale(NOW, 6, 6, 1, decider, state())
    expect(result, 6, expected_ebc(1, 101, 6, 1))
    result, current = kpa.scale(NOW, 36, 36, 6, decider, current)
    expect(result, 36, expected_ebc(1, 101, 36, 6))
    assert current.panic_time == NOW
    result, current = kpa.scale(NOW + 1, 216, 216, 36, decider, current)
    expect(result, 216, expected_ebc(1, 101, 216, 36))
    assert current.panic_time == NOW + 1
    result, current = kpa.scale(NOW + 1, 1296, 1296, 216, decider, current)
    expect(result, 1296, expected_ebc(1, 101, 1296, 216))
    assert current.panic_time == NOW + 1
    result, _ = kpa.scale(NOW + 2, 1296, 1296, 1296, decider, current)
    expect(result, 1296, expected_ebc(1, 101, 1296, 1296))


# TestAutoscalerScale: label, (target, burst), (stable, panic), ready pods, spec changes, state, want pods, want EBC
SCALE_TABLE = [
    ("AutoscalerNoDataAtZeroNoAutoscale", (10, 100), (0, 0), 1, {}, None, 0, expected_ebc(10, 100, 0, 1)),
    ("AutoscalerNoDataAtZeroNoAutoscaleWithExplicitEPs", (10, 100), (0, 0), 1, {}, None, 0,
     expected_ebc(10, 100, 0, 1)),
    ("AutoscalerStableModeUnlimitedTBC", (181, -1), (21, 26), 1, {}, None, 1, -1),
    ("Autoscaler0TBC", (10, 0), (50, 49), 1, {}, None, 5, 0),
    ("AutoscalerStableModeNoChange", (10, 100), (50, 50), 1, {}, None, 5, expected_ebc(10, 100, 50, 1)),
    ("AutoscalerPanicStableLargerThanPanic", (1, 100), (50, 30), 5, {},
     kpa.DeciderState(panic_time=NOW - 5, max_panic_pods=5), 50, expected_ebc(1, 100, 30, 5)),
    ("AutoscalerPanicStableLessThanPanic", (1, 100), (20, 30), 5, {},
     kpa.DeciderState(panic_time=NOW - 5, max_panic_pods=5), 30, expected_ebc(1, 100, 30, 5)),
    ("AutoscalerStableModeNoChangeAlreadyScaled", (10, 100), (50, 50), 5, {}, None, 5,
     expected_ebc(10, 100, 50, 5)),
    ("AutoscalerStableModeIncreaseWithSmallScaleUpRate", (1, 1982), (3, 3.1), 2, {"max_scale_up_rate": 1.1}, None,
     3, expected_ebc(1, 1982, 3.1, 2)),
    ("AutoscalerStableModeDecreaseWithSmallScaleDownRate", (10, 1982), (1, 1), 100, {"max_scale_down_rate": 1.1},
     None, 90, expected_ebc(10, 1982, 1, 100)),
    ("AutoscalerStableModeDecreaseNonReachable", (10, 1982), (1, 1), 100,
     {"max_scale_down_rate": 1.1, "reachable": False}, None, 1, expected_ebc(10, 1982, 1, 100)),
    ("AutoscalerPanicModeDoublePodCount", (10, 84), (50, 100), 1, {}, None, 10, expected_ebc(10, 84, 100, 1)),
]


@pytest.mark.parametrize("label, spec_args, values, ready, changes, prepared, want, want_ebc", SCALE_TABLE,
                         ids=[row[0] for row in SCALE_TABLE])
def test_autoscaler_scale(label, spec_args, values, ready, changes, prepared, want, want_ebc):
    result, _ = kpa.scale(NOW, *values, ready, spec(*spec_args, **changes), prepared or state())

    expect(result, want, want_ebc)


def test_autoscaler_panic_then_unpanic_scale_down():
    decider = spec(10, 93)
    result, current = kpa.scale(NOW - 0.001, 100, 100, 1, decider, state())
    expect(result, 10, expected_ebc(10, 93, 100, 1))
    result, current = kpa.scale(NOW, 100, 1000, 10, decider, current)
    expect(result, 100, expected_ebc(10, 93, 1000, 10))
    # traffic dropped off: scale stays while still in panic
    result, current = kpa.scale(NOW + 30, 1, 1, 10, decider, current)
    expect(result, 100, expected_ebc(10, 93, 1, 10))
    # scale down after the stable window
    result, _ = kpa.scale(NOW + 61, 1, 1, 10, decider, current)
    expect(result, 1, expected_ebc(10, 93, 1, 10))


def test_autoscaler_rate_limit_scale_up():
    decider = spec(10, 61)
    result, current = kpa.scale(NOW, 1000, 1001, 1, decider, state())
    expect(result, 10, expected_ebc(10, 61, 1001, 1))  # needs 100 pods, but only x10
    result, _ = kpa.scale(NOW, 1000, 1001, 10, decider, current)
    expect(result, 100, expected_ebc(10, 61, 1001, 10))  # x10 again


def test_autoscaler_rate_limit_scale_down():
    decider = spec(10, 61)
    result, current = kpa.scale(NOW, 1, 1, 100, decider, state())
    expect(result, 10, expected_ebc(10, 61, 1, 100))  # needs 1 pod, can only go down ten times
    result, _ = kpa.scale(NOW, 1, 1, 10, decider, current)
    expect(result, 1, expected_ebc(10, 61, 1, 10))


def test_autoscaler_use_one_pod_as_minimum_if_endpoints_not_found():
    result, _ = kpa.scale(NOW, 1000, 888, 0, spec(10, 81), state())

    expect(result, 10, expected_ebc(10, 81, 888, 0))


def test_autoscaler_update_target():
    result, current = kpa.scale(NOW, 100, 101, 1, spec(10, 77), state())
    expect(result, 10, expected_ebc(10, 77, 101, 1))
    updated = kpa.DeciderSpec(target_value=1, total_value=1 / TARGET_UTILIZATION, target_burst_capacity=71,
                              panic_threshold=2, max_scale_down_rate=10, max_scale_up_rate=10,
                              stable_window=STABLE_WINDOW, reachable=False)
    result, _ = kpa.scale(NOW, 100, 101, 10, updated, current)
    expect(result, 100, expected_ebc(1, 71, 101, 10))


def test_start_in_panic_mode():
    for ready in range(2):
        created = kpa.initial_state(ready, NOW)
        assert not created.panicking
        assert created.max_panic_pods == ready
    created = kpa.initial_state(2, NOW)
    assert created.panicking
    assert created.max_panic_pods == 2
