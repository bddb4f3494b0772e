"""One decision of Knative's pod autoscaler (KPA), ported from knative/serving `pkg/autoscaler/scaling/autoscaler.go`.

`scale` mirrors upstream's `autoscaler.Scale`: from the time, the stable and panic values of the scaling metric
(concurrency or requests per second, each already averaged over its window), the ready pod count and the decider
spec, it returns the desired pod count and the excess burst capacity, and the new panic state. It is pure: the state
upstream keeps in the autoscaler struct (panic time, the most pods wanted in this panic, the scale-down-delay window)
goes in and comes out, so the same inputs always give the same answer.

What the caller does around it, as upstream does: average the metric over 1-second buckets
(`window_average`), call `scale` every 2 s (`TICK_SECONDS`), clamp to min/max scale and apply scale to zero
(`applied`, after pkg/reconciler/autoscaling/kpa/scaler.go). Two callers share this module: the simulation
(bench/sim/knative.py) and `make up SCALING=knative`'s gateway (local/scaling/), so the model checked by
`make replay` is the very code that scales the local shop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TICK_SECONDS = 2  # pkg/autoscaler/scaling/multiscaler.go tickInterval
TARGET_MIN = 0.01  # pkg/apis/autoscaling: the smallest target resources/target.go allows


@dataclass(frozen=True)
class DeciderSpec:
    """What upstream's DeciderSpec carries for one revision (defaults: pkg/autoscaler/config/config.go)."""

    target_value: float  # per pod: total_value x target utilisation
    total_value: float  # per pod: containerConcurrency (100 when 0), or the `target` annotation capped by it
    target_burst_capacity: float = 211.0  # -1: unlimited, 0: activator only when scaled to zero
    panic_threshold: float = 2.0  # a fraction: panic-threshold-percentage / 100
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    stable_window: float = 60.0  # seconds
    scale_down_delay: float = 0.0  # seconds; 0 keeps no delay window at all
    activation_scale: int = 1
    reachable: bool = True  # false while another revision takes the traffic: no scale-down rate limit


@dataclass(frozen=True)
class DeciderState:
    """The autoscaler's memory between ticks: panic mode and the scale-down-delay window."""

    panic_time: float | None = None  # None: not panicking
    max_panic_pods: int = 0
    delay_window: tuple[tuple[int, int], ...] = ()  # (tick index, desired) in descending order of desired

    @property
    def panicking(self) -> bool:
        return self.panic_time is not None


@dataclass(frozen=True)
class ScaleResult:
    desired_pods: int
    excess_burst_capacity: int
    valid: bool = True


INVALID = ScaleResult(0, 0, valid=False)


def target_and_total(container_concurrency: int, annotation_target: float | None, utilization: float,
                     default_total: float = 100.0) -> tuple[float, float]:
    """pkg/reconciler/autoscaling/resources/target.go ResolveMetricTarget, for the concurrency metric."""
    total = float(container_concurrency) or default_total
    if annotation_target is not None:
        total = min(annotation_target, container_concurrency) if container_concurrency else annotation_target
    return max(TARGET_MIN, total * utilization), total


def initial_state(ready_pods: int, now: float) -> DeciderState:
    """newAutoscaler: a decider created over more than one ready pod starts in panic, holding that scale until its
    metrics have filled a window (after an autoscaler restart the history is lost)."""
    if ready_pods > 1:
        return DeciderState(panic_time=now, max_panic_pods=ready_pods)
    return DeciderState(max_panic_pods=max(0, ready_pods))


def scale(now: float, stable: float | None, panic: float | None, ready_pods: int, spec: DeciderSpec,
          state: DeciderState) -> tuple[ScaleResult, DeciderState]:
    """One tick. `stable`/`panic` None means the metric has no data yet (upstream: ErrNoData): no decision."""
    if stable is None or panic is None:
        return INVALID, state
    ready = max(1.0, float(ready_pods))  # "Use 1 if there are zero current pods."
    max_scale_up = math.ceil(spec.max_scale_up_rate * ready)
    max_scale_down = math.floor(ready / spec.max_scale_down_rate) if spec.reachable else 0
    dspc = math.ceil(stable / spec.target_value)
    dppc = math.ceil(panic / spec.target_value)
    desired_stable = int(min(max(dspc, max_scale_down), max_scale_up))
    desired_panic = int(min(max(dppc, max_scale_down), max_scale_up))
    if spec.activation_scale > 1:
        if dspc > 0 and spec.activation_scale > desired_stable:
            desired_stable = spec.activation_scale
        if dppc > 0 and spec.activation_scale > desired_panic:
            desired_panic = spec.activation_scale

    panic_time, max_panic_pods = state.panic_time, state.max_panic_pods
    if dppc / ready >= spec.panic_threshold:
        panic_time = now  # enter panic, or extend it
    elif panic_time is not None and panic_time + spec.stable_window < now:
        panic_time, max_panic_pods = None, 0  # the surge has made its way into the stable window

    desired = desired_stable
    if panic_time is not None:
        desired = max(desired, desired_panic)
        max_panic_pods = max(max_panic_pods, desired)  # never scale down while panicking
        desired = max_panic_pods

    window = state.delay_window
    if spec.scale_down_delay > 0:
        window = _record_max(window, int(now) // TICK_SECONDS, desired,
                             math.ceil(spec.scale_down_delay / TICK_SECONDS))
        desired = window[0][1]

    if spec.target_burst_capacity == 0:
        excess = 0.0
    elif spec.target_burst_capacity > 0:
        excess = math.floor(ready_pods * spec.total_value - spec.target_burst_capacity - panic)
    else:
        excess = -1.0
    return (ScaleResult(desired, int(excess)),
            DeciderState(panic_time=panic_time, max_panic_pods=max_panic_pods, delay_window=window))


def applied(desired: int, existing: int, now: float, active_since: float | None, zero_since: float | None,
            stable_window: float, zero_after: float) -> tuple[int, float | None]:
    """The pod count to run after a decision of `desired` (already bounded) over `existing` pods (ready or starting),
    and the new start of the scale-to-zero grace (None: not scaling to zero). Desired 0 marks the revision inactive;
    its last pod goes once `zero_after` (the grace period, or the pod retention when longer) has passed, and a
    revision active for less than a stable window keeps one pod (scaler.go)."""
    if desired == 0 and existing:
        if active_since is not None and now - active_since < stable_window:
            return 1, zero_since
        zero_since = now if zero_since is None else zero_since
        return (0 if now - zero_since >= zero_after else existing), zero_since
    return desired, (None if desired else zero_since)


def _record_max(window: tuple[tuple[int, int], ...], index: int, value: int, buckets: int) -> tuple[tuple[int, int], ...]:
    """pkg/autoscaler/aggregation/max/window.go Record: a descending-maxima window over `buckets` tick indexes."""
    entries = list(window)
    while entries and not value < entries[-1][1]:
        entries.pop()
    entries = [entry for entry in entries if index - entry[0] < buckets]
    if entries and entries[-1][0] == index:
        value = max(value, entries.pop()[1])
    entries.append((index, value))
    return tuple(entries)


def window_average(total: float, buckets: int) -> float:
    """An average as upstream's bucketing returns it: floored to 6 digits, so that 0.7 x 100 / 70 stays 1."""
    if buckets <= 0:
        return 0.0
    return math.floor(total / buckets * 1e6) / 1e6
