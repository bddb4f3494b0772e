"""The same traffic on Cloud Run, vectorised over the day.

Instances take up to `concurrency` requests each (80 by default, never more than the manifest's
containerConcurrency). Cloud Run's autoscaler keeps instances near 60 % of that concurrency and of their CPU; the
requests of a second are spread evenly over the instances it wants. An instance idle for 15 minutes is retired
(min instances 0): a second that wants more instances than are alive starts new ones, which are ready after the
start-up (platform + our process start); requests that find no room wait for them.

Billing (https://cloud.google.com/run/pricing):
* request-based: an instance's billable time is the time it handles at least one request, plus its start-up,
  rounded up to 100 ms; concurrent requests on one instance share that time. `billable_seconds` does it exactly for
  given requests; the simulation uses its expectation under Poisson arrivals in each second (`busy_billable`,
  within 5 % of the exact billing in tests/unit/test_sim_cloud_run.py).
* instance-based: every second an instance is alive, idle ones included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.sim import queueing
from bench.sim.config import ServiceConfig
from bench.sim.inputs import CLOUD_RUN_INSTANCE_START_SECONDS, EndpointInputs

CONCURRENCY = 80  # Cloud Run's default maximum concurrent requests per instance
TARGET_UTILIZATION = 0.6  # the autoscaler's aim for concurrency and CPU per instance
IDLE_RETENTION_SECONDS = 900  # an idle instance may be kept this long
ROUNDING_SECONDS = 0.1


def billable_seconds(requests: list[tuple[float, float]], rounding: float = ROUNDING_SECONDS) -> float:
    """One instance's billable time for requests given as (start, end). Billing starts with a request and runs in
    `rounding` steps while the instance handles at least one request; a request that arrives inside an already
    billed step joins it. Concurrent requests therefore share the instance's time."""
    total = 0.0
    began = busy_until = billed_until = None
    for start, end in sorted(requests):
        if began is not None and start < billed_until:
            busy_until = max(busy_until, end)
            billed_until = began + _rounded_up(busy_until - began, rounding)
            continue
        if began is not None:
            total += billed_until - began
        began, busy_until = start, end
        billed_until = start + _rounded_up(end - start, rounding)
    if began is not None:
        total += billed_until - began
    return total


def _rounded_up(seconds: float, rounding: float) -> float:
    return math.ceil(seconds / rounding - 1e-9) * rounding if seconds > 0 else 0.0


def busy_billable(rate: np.ndarray, service_time: float, in_flight: np.ndarray | None = None,
                  rounding: float = ROUNDING_SECONDS) -> np.ndarray:
    """Expected billable seconds in one second of one instance receiving Poisson arrivals at `rate`, each request
    `service_time` long (the expectation of `billable_seconds`; bench.cost.model.busy_billed_seconds is the same
    formula for one rate). A billed stretch lasts L on average, then the instance idles until the next arrival
    (1/rate): billed share = rate·L / (1 + rate·L), with L the larger of
    d + r·(e^ρ - 1)                      (d = service time rounded up; each further step taken with probability
                                          1 - e^-ρ that a request crosses into it, ρ = rate·service time), and
    d + E[busy period] - s + r/2·(1 - e^-ρ)   (a long busy period, rounded up by half a step on average);
    at least the share of the second with a request in flight, at most 1."""
    rate = np.asarray(rate, dtype=float)
    load = np.minimum(rate * service_time, 50.0)
    first = _rounded_up(service_time, rounding)
    grown = np.expm1(load)
    with np.errstate(divide="ignore", invalid="ignore"):
        stretch = np.maximum(first + rounding * grown,
                             first + np.where(rate > 0, grown / np.where(rate > 0, rate, 1.0), 0.0) - service_time
                             + rounding / 2 * -np.expm1(-load))
        billed = np.where(rate > 0, rate * stretch / (1 + rate * stretch), 0.0)
    occupied = -np.expm1(-(load if in_flight is None else np.maximum(load, in_flight)))
    return np.clip(np.maximum(billed, occupied), 0.0, 1.0)


def sliding_max(values: np.ndarray, window: int) -> np.ndarray:
    """result[t] = max(values[t - window + 1 .. t]), by doubling spans (O(n log window))."""
    result = values.astype(float).copy()
    span = 1
    while span < window:
        step = min(span, window - span)
        shifted = np.concatenate([np.zeros(step), result[:-step]]) if step < len(result) else np.zeros(len(result))
        result = np.maximum(result, shifted)
        span += step
    return result


@dataclass
class CloudRunRun:
    requests: np.ndarray
    wanted: np.ndarray  # instances the autoscaler wants in each second
    alive: np.ndarray  # instances alive (busy or idle, not yet retired)
    cold_starts: np.ndarray
    billable_seconds: np.ndarray  # request-based billable instance-seconds in each second (start-ups included)
    concurrency: int
    start_seconds: float
    waits: dict


def simulate(arrivals: np.ndarray, config: ServiceConfig, inputs: EndpointInputs, concurrency: int = CONCURRENCY,
             platform_start: float = CLOUD_RUN_INSTANCE_START_SECONDS, warm_start: bool = True) -> CloudRunRun:
    limit = min(concurrency, config.container_concurrency) if config.container_concurrency else concurrency
    service_time, cpu, cpu_limit = inputs.service_time, inputs.cpu_per_request, config.cpu_limit
    counts = arrivals.astype(float)
    in_flight = queueing.in_flight(counts, service_time)
    wanted = np.maximum(np.ceil(in_flight / (TARGET_UTILIZATION * limit) - 1e-9),
                        np.ceil(counts * cpu / (TARGET_UTILIZATION * cpu_limit) - 1e-9))
    wanted = np.where((counts > 0) | (in_flight > 1e-9), np.maximum(wanted, 1), 0)
    # warm start: the instances the first minute wants were alive before the day began
    warm = float(wanted[:60].max()) if len(wanted) and warm_start else 0.0
    alive = sliding_max(np.concatenate([[warm], wanted]), IDLE_RETENTION_SECONDS)
    before, alive = alive[:-1], alive[1:]
    cold = np.maximum(wanted - before, 0)
    start = platform_start + inputs.process_start

    each = np.where(wanted > 0, counts / np.maximum(wanted, 1), 0.0)
    billed = wanted * busy_billable(each, service_time, in_flight / np.maximum(wanted, 1))
    billed = np.maximum(billed, counts * cpu / cpu_limit) + cold * start

    # ready instances over time: alive ones less those still starting
    cold_seconds = np.flatnonzero(cold)
    ready_at = cold_seconds + 1 / (counts[cold_seconds] + 1) + start
    cold_counts = cold[cold_seconds]
    started_by = np.cumsum(cold)
    ready_order = np.argsort(ready_at, kind="stable")
    ready_times, ready_cumulative = ready_at[ready_order], np.cumsum(cold_counts[ready_order])

    def ready(times: np.ndarray) -> np.ndarray:
        second = np.clip(np.floor(times).astype(np.int64), 0, len(counts) - 1)
        done = np.searchsorted(ready_times, times, side="right")
        finished = np.where(done > 0, ready_cumulative[np.clip(done - 1, 0, None)], 0) if len(ready_times) else 0
        return alive[second] - (started_by[second] - finished)

    seconds = np.arange(len(counts), dtype=float)
    at_start = ready(seconds)
    effective = at_start.astype(float)
    inside = ready_at < len(counts)
    np.add.at(effective, np.floor(ready_at[inside]).astype(np.int64),
              cold_counts[inside] * (np.floor(ready_at[inside]) + 1 - ready_at[inside]))
    per_instance = queueing.capacity_per_replica(limit, service_time, cpu, cpu_limit)
    waiting = queueing.backlog(counts, effective * per_instance)
    marks = (waiting > 1e-9) | ((counts > 0) & (at_start <= 0))
    step_times = np.sort(np.concatenate([seconds, ready_times]))
    step_values = ready(step_times)
    waits, weights = [], []
    for begin, end in queueing.episodes(marks):
        episode, weight = queueing.episode_waits(arrivals, begin, end, step_times, step_values, per_instance)
        waits.append(episode)
        weights.append(weight)
    all_waits = np.concatenate(waits) if waits else np.zeros(0)
    all_weights = np.concatenate(weights) if weights else np.zeros(0)
    return CloudRunRun(requests=arrivals.astype(np.int64), wanted=wanted, alive=alive, cold_starts=cold,
                       billable_seconds=billed, concurrency=limit, start_seconds=start,
                       waits=queueing.wait_summary(all_waits, all_weights, float(counts.sum())))
