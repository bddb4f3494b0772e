"""One Knative Service under the KPA, second by second.

Each second: pods whose cold start ended become ready; requests start on ready pods up to their capacity and the
rest wait (in the activator while no pod is ready, in queue-proxy past containerConcurrency); the revision-wide
concurrency (in service + waiting) is recorded into a 1-second bucket, as the autoscaler scrapes it. Every 2 s the
stable (60 s) and panic (6 s) window averages go into `kpa.scale`; its desired count is bounded by min/max scale and
applied: new pods are ready after the cold start (Knative's pod start + our process start), surplus pods go at
once (pods still starting first). Scale to zero follows pkg/reconciler/autoscaling/kpa/scaler.go: desired 0 (no
request for a whole stable window) marks the revision inactive and its last pod goes after the grace period. At zero
pods the first request pokes the autoscaler at once (the activator reports concurrency 1). Seconds in which nothing
can change (no pod, no request, an empty window) are skipped: idle endpoints cost nothing to simulate.

The loop steps per second, never per request; the waits come afterwards from queueing.episode_waits.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from bench.sim import kpa, queueing
from bench.sim.config import (
    ACTIVATOR_QUEUE_DEPTH,
    QUEUE_DEPTH_PER_CONCURRENCY,
    ServiceConfig,
)
from bench.sim.inputs import KNATIVE_POD_START_SECONDS, EndpointInputs

CALM_FIRST_HORIZON = 64  # seconds looked ahead at once for a calm stretch, growing x4 while it lasts
CALM_HORIZON = 4096
CALM_RETRY = 8  # after a stretch could not start, try again this many seconds later


@dataclass
class KnativeRun:
    requests: np.ndarray
    concurrency: np.ndarray
    ready_pods: np.ndarray  # at the end of each second
    pods: np.ndarray  # ready or starting: what holds resources
    desired_pods: np.ndarray
    panic: np.ndarray
    cold_starts: np.ndarray
    queued: np.ndarray
    rejected: float
    waits: dict
    cold_start_seconds: float


def _first_minute_concurrency(arrivals: np.ndarray, service_time: float) -> float:
    head = arrivals[:60].astype(float)
    return float(head.mean() * service_time) if len(head) else 0.0


def simulate(arrivals: np.ndarray, config: ServiceConfig, inputs: EndpointInputs, warm_start: bool = True,
             pod_start: float = KNATIVE_POD_START_SECONDS) -> KnativeRun:
    """The KPA over `arrivals` (requests in each second). With `warm_start` the day begins as the night before
    ended: the first minute's load already has its pods and fills the windows."""
    seconds = len(arrivals)
    counts = arrivals.astype(float).tolist()
    busy_seconds = np.flatnonzero(arrivals).tolist()
    service_time = inputs.service_time
    kernel = queueing.overlap_kernel(service_time).tolist()
    k0, k1 = kernel[0], (kernel[1] if len(kernel) > 1 else 0.0)
    long_kernel = len(kernel) > 2
    per_pod = queueing.capacity_per_replica(config.container_concurrency, service_time, inputs.cpu_per_request,
                                            config.cpu_limit)
    queue_per_pod = QUEUE_DEPTH_PER_CONCURRENCY * config.container_concurrency if config.container_concurrency \
        else math.inf
    cold = pod_start + inputs.process_start
    spec = config.decider_spec()
    stable_window, panic_window = int(config.stable_window), int(config.panic_window)
    zero_after = max(config.scale_to_zero_grace, config.pod_retention)
    rps = config.metric == "rps"

    concurrency = [0.0] * seconds
    ready_out = [0] * seconds
    pods_out = [0] * seconds
    desired_out = [0] * seconds
    panic_out = [0] * seconds
    cold_out = [0] * seconds
    queued_out = [0.0] * seconds
    started = [0.0] * seconds
    waiting = [0] * seconds  # seconds that hold a wait: the episodes of queueing.episode_waits
    # cumulative recorded metric, shifted by one stable window so the warm start can fill the window before 0
    cumulative = [0.0] * (seconds + stable_window + 1)
    offset = stable_window

    ready, starting = 0, deque()
    state = kpa.DeciderState()
    last_write = first_stable = first_panic = None
    active_since = None
    zero_since = None
    pending = 0.0
    rejected = 0.0
    ready_steps: list[tuple[float, int]] = []

    initial = _first_minute_concurrency(arrivals, service_time)
    if warm_start and initial > 0:
        value = float(arrivals[:60].mean()) if rps else initial
        ready = config.bounded(max(1, math.ceil(value / spec.target_value)))
        for index in range(1, stable_window + 1):
            cumulative[index] = cumulative[index - 1] + value
        last_write, first_stable, first_panic = -1, -stable_window, -panic_window
    else:
        ready = config.min_scale
        if ready:
            last_write = first_stable = first_panic = -1
    if ready:
        active_since = -math.inf
        ready_steps.append((-math.inf, ready))
    desired = ready

    def average(now_bucket: int, window: int, first: int) -> float:
        gap = now_bucket - last_write
        if gap >= window:
            return 0.0
        total = cumulative[offset + now_bucket + 1] - cumulative[max(0, offset + now_bucket + 1 - window)]
        return kpa.window_average(total, min(last_write - first + 1, window - gap))

    arrivals_float = arrivals.astype(float)
    kernel_array = np.array(kernel)
    window_max = max(stable_window, panic_window)

    def _calm_stretch(start: int, end: int, pods: int) -> int:
        """Seconds from `start` in which nothing but the load changes: every request starts at once on the `pods`
        ready pods and every tick's decision keeps them. Those seconds are filled in vectorised; the first second
        that breaks the calm (its tick wants another count, or panics, or the pods are full) is left to the
        second-by-second path, which decides exactly as it would have."""
        load = arrivals_float[start:end]
        full = np.flatnonzero(load > pods * per_pod)
        if len(full):
            end = start + int(full[0])
            load = load[: end - start]
        if end <= start:
            return 0
        history = np.array(started[max(0, start - len(kernel) + 1): start])
        in_service = np.convolve(np.concatenate([history, load]), kernel_array)[len(history): len(history) + len(load)]
        metric = load if rps else in_service
        before = np.array(cumulative[offset + start + 1 - window_max: offset + start + 1])
        sums = np.concatenate([before, cumulative[offset + start] + np.cumsum(metric)])
        seconds_here = np.arange(start, end)
        ticks = np.flatnonzero((seconds_here + 1) % kpa.TICK_SECONDS == 0)
        if len(ticks):
            at = ticks + window_max
            stable = np.floor((sums[at] - sums[at - stable_window])
                              / np.minimum(seconds_here[ticks] - first_stable + 1, stable_window) * 1e6) / 1e6
            panic = np.floor((sums[at] - sums[at - panic_window])
                             / np.minimum(seconds_here[ticks] - first_panic + 1, panic_window) * 1e6) / 1e6
            dspc = np.ceil(stable / spec.target_value)
            dppc = np.ceil(panic / spec.target_value)
            wanted = np.clip(dspc, math.floor(pods / spec.max_scale_down_rate), math.ceil(spec.max_scale_up_rate * pods))
            if spec.activation_scale > 1:
                wanted = np.where((dspc > 0) & (wanted < spec.activation_scale), spec.activation_scale, wanted)
            wanted = np.maximum(wanted, config.min_scale)
            if config.max_scale:
                wanted = np.minimum(wanted, config.max_scale)
            broken = np.flatnonzero((dppc / pods >= spec.panic_threshold) | (wanted != pods))
            if len(broken):
                end = start + int(ticks[broken[0]])
        length = end - start
        if length <= 0:
            return 0
        concurrency[start:end] = in_service[:length].tolist()
        started[start:end] = load[:length].tolist()
        cumulative[offset + start + 1: offset + end + 1] = sums[window_max: window_max + length].tolist()
        ready_out[start:end] = [pods] * length
        pods_out[start:end] = [pods] * length
        desired_out[start:end] = [pods] * length
        nonlocal last_write
        last_write = end - 1
        return length

    retry_calm = 0
    t = 0
    while t < seconds:
        if (not ready and not starting and pending == 0 and counts[t] == 0 and state.panic_time is None
                and not any(started[max(0, t - len(kernel) + 1):t])):
            # nothing in flight, no pod: every tick until the next request would decide 0
            following = bisect.bisect_left(busy_seconds, t)
            jump_to = busy_seconds[following] if following < len(busy_seconds) else seconds
            cumulative[offset + t + 1: offset + jump_to + 1] = [cumulative[offset + t]] * (jump_to - t)
            t = jump_to
            continue

        if (ready and not starting and pending == 0 and state.panic_time is None and zero_since is None
                and all(value <= ready for _, value in state.delay_window) and t >= retry_calm):
            calm, horizon = 0, CALM_FIRST_HORIZON
            while t < seconds:
                stretch = _calm_stretch(t, min(seconds, t + horizon), ready)
                t += stretch
                calm += stretch
                if stretch < horizon:
                    break
                horizon = min(4 * horizon, CALM_HORIZON)
            if calm:
                last_tick = t - t % kpa.TICK_SECONDS
                if spec.scale_down_delay and last_tick > t - calm:
                    # each calm tick recorded `ready` into the delay window, which drops every entry not above it
                    state = dataclasses.replace(state, delay_window=((last_tick // kpa.TICK_SECONDS, ready),))
                continue
            retry_calm = t + CALM_RETRY

        if zero_since is not None and not starting and pending == 0 and state.panic_time is None:
            # inactive, waiting out the grace period: without a request nothing changes until the pods go
            removal = math.ceil(zero_since + zero_after) - 1  # the second whose tick removes them
            following = bisect.bisect_left(busy_seconds, t)
            quiet_until = min(removal, busy_seconds[following] if following < len(busy_seconds) else seconds, seconds)
            if quiet_until > t and not any(started[max(0, t - len(kernel) + 1):t]):
                length = quiet_until - t
                cumulative[offset + t + 1: offset + quiet_until + 1] = [cumulative[offset + t]] * length
                ready_out[t:quiet_until] = [ready] * length
                pods_out[t:quiet_until] = [ready] * length
                last_write = quiet_until - 1
                t = quiet_until
                continue

        arriving = counts[t]
        ready_at_start = ready
        effective = float(ready)
        while starting and starting[0] < t + 1:
            became_ready = starting.popleft()
            effective += t + 1 - max(became_ready, t)
            ready += 1
            if active_since is None or ready == 1:
                active_since = became_ready
            ready_steps.append((became_ready, ready))

        if not ready_at_start and not starting and ready == 0 and arriving > 0:
            # the activator holds the request and pokes the autoscaler: it decides at once on concurrency 1
            poke = t + 1 / (arriving + 1)
            result, state = kpa.scale(poke, 1.0, 1.0, 0, spec, state)
            wanted = config.bounded(max(1, result.desired_pods))
            for _ in range(wanted):
                starting.append(poke + cold)
            cold_out[t] += wanted
            desired = wanted
            zero_since = None

        demand = pending + arriving
        capacity = effective * per_pod
        if demand <= capacity:
            begun, left = demand, 0.0
        else:
            begun, left = capacity, demand - capacity
            limit = ACTIVATOR_QUEUE_DEPTH + ready * queue_per_pod
            if left > limit:
                rejected += left - limit
                left = limit
        started[t] = begun
        if long_kernel:
            in_service = sum(kernel[j] * started[t - j] for j in range(min(len(kernel), t + 1)))
        else:
            in_service = k0 * begun + (k1 * started[t - 1] if t else 0.0)
        value = in_service + (pending + left) / 2
        if left > 0 or (arriving > 0 and ready_at_start == 0) or effective < ready:
            waiting[t] = 1
        pending = left
        concurrency[t] = value
        metric = arriving if rps else value
        if ready or starting or metric > 0:
            if last_write is None or t - last_write >= stable_window:
                first_stable = t
            if last_write is None or t - last_write >= panic_window:
                first_panic = t
            last_write = t
            cumulative[offset + t + 1] = cumulative[offset + t] + metric
        else:
            cumulative[offset + t + 1] = cumulative[offset + t]

        now = t + 1
        if now % kpa.TICK_SECONDS == 0 and last_write is not None and t - last_write <= stable_window:
            result, state = kpa.scale(now, average(t, stable_window, first_stable),
                                      average(t, panic_window, first_panic), ready, spec, state)
            desired = config.bounded(result.desired_pods)
            existing = ready + len(starting)
            wanted, zero_since = kpa.applied(desired, existing, now, active_since, zero_since, stable_window,
                                             zero_after)
            if wanted > existing:
                for _ in range(wanted - existing):
                    starting.append(now + cold)
                cold_out[t] += wanted - existing
            elif wanted < existing:
                surplus = existing - wanted
                while surplus and starting:
                    starting.pop()
                    surplus -= 1
                if surplus:
                    ready -= surplus
                    ready_steps.append((float(now), ready))
                    if ready == 0:
                        active_since = None
                        zero_since = None
        desired_out[t] = desired
        panic_out[t] = 1 if state.panicking else 0
        ready_out[t] = ready
        pods_out[t] = ready + len(starting)
        queued_out[t] = pending
        t += 1

    requests = arrivals.astype(np.int64)
    waits, weights = [], []
    step_times = np.array([time for time, _ in ready_steps])
    step_values = np.array([value for _, value in ready_steps])
    for start, end in queueing.episodes(np.array(waiting)):
        episode, weight = queueing.episode_waits(arrivals, start, end, step_times, step_values, per_pod)
        waits.append(episode)
        weights.append(weight)
    all_waits = np.concatenate(waits) if waits else np.zeros(0)
    all_weights = np.concatenate(weights) if weights else np.zeros(0)
    return KnativeRun(
        requests=requests, concurrency=np.array(concurrency), ready_pods=np.array(ready_out),
        pods=np.array(pods_out), desired_pods=np.array(desired_out), panic=np.array(panic_out),
        cold_starts=np.array(cold_out), queued=np.array(queued_out), rejected=rejected,
        waits=queueing.wait_summary(all_waits, all_weights, float(requests.sum())), cold_start_seconds=cold)
