"""The seed's always-on design for the same traffic: a Deployment per endpoint with at least 2 replicas and a
HorizontalPodAutoscaler on CPU at 70 % of the request.

The HPA (Kubernetes' defaults, https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/) syncs
every 15 s on the CPU its ready pods used since the previous sync: desired = ceil(used / (70 % x request)),
unchanged within the 10 % tolerance; scaling up adds at most max(100 %, 4 pods) per period; scaling down takes the
highest recommendation of the last 5 minutes (the stabilisation window). New pods are ready after the pod start and
our process start, like a Knative pod's. Requests wait only when the ready pods' CPU is full.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from bench.sim import queueing
from bench.sim.config import ServiceConfig
from bench.sim.inputs import KNATIVE_POD_START_SECONDS, EndpointInputs

MIN_REPLICAS = 2
TARGET_CPU = 0.70
TOLERANCE = 0.10
SYNC_SECONDS = 15
SCALE_DOWN_STABILIZATION_SECONDS = 300
DEFAULT_MAX_REPLICAS = 100  # when the manifest sets no max-scale


@dataclass
class AlwaysOnRun:
    requests: np.ndarray
    replicas: np.ndarray  # ready or starting
    ready: np.ndarray
    cold_starts: np.ndarray
    waits: dict


def simulate(arrivals: np.ndarray, config: ServiceConfig, inputs: EndpointInputs,
             pod_start: float = KNATIVE_POD_START_SECONDS) -> AlwaysOnRun:
    seconds = len(arrivals)
    counts = arrivals.astype(float)
    cpu_request = config.cpu_request or config.cpu_limit
    aim = TARGET_CPU * cpu_request
    most = max(MIN_REPLICAS, config.max_scale or DEFAULT_MAX_REPLICAS)
    start = pod_start + inputs.process_start
    per_pod = queueing.capacity_per_replica(config.container_concurrency, inputs.service_time,
                                            inputs.cpu_per_request, config.cpu_limit)
    demand = counts * inputs.cpu_per_request  # CPU-seconds the requests of each second need
    used_total = np.concatenate([[0.0], np.cumsum(demand)])

    first = float(demand[:60].mean()) if seconds else 0.0
    initial = min(most, max(MIN_REPLICAS, math.ceil(first / aim - 1e-9)))
    pods = [[-math.inf, math.inf] for _ in range(initial)]  # [ready at, removed at] of every pod ever started
    alive = list(pods)
    replicas_out = np.zeros(seconds, dtype=np.int64)
    cold_out = np.zeros(seconds, dtype=np.int64)
    recommendations: deque[tuple[int, int]] = deque()
    starting: list[list[float]] = []
    # the syncs whose CPU would want more than the minimum; between them, at the minimum, nothing changes
    starts = np.arange(0, seconds, SYNC_SECONDS)
    ends = np.minimum(starts + SYNC_SECONDS, seconds)
    wanting = np.flatnonzero(np.ceil((used_total[ends] - used_total[starts]) / (ends - starts) / aim - 1e-9)
                             > MIN_REPLICAS)
    wanting_ends = ends[wanting].tolist()
    previous = 0
    while previous < seconds:
        if (len(alive) == MIN_REPLICAS and not starting
                and all(value == MIN_REPLICAS for _, value in recommendations)):
            following = bisect.bisect_right(wanting_ends, previous)
            quiet_until = wanting_ends[following] - SYNC_SECONDS if following < len(wanting_ends) else seconds
            if quiet_until > previous + SYNC_SECONDS:
                quiet_until = previous + (quiet_until - previous) // SYNC_SECONDS * SYNC_SECONDS
                replicas_out[previous:quiet_until] = MIN_REPLICAS
                recommendations = deque([(quiet_until, MIN_REPLICAS)])
                previous = quiet_until
                continue
        now = min(previous + SYNC_SECONDS, seconds)
        replicas_out[previous:now] = len(alive)
        starting = [pod for pod in starting if pod[0] > now and pod[1] == math.inf]
        ready_now = len(alive) - len(starting)
        used = min((used_total[now] - used_total[previous]) / (now - previous), ready_now * config.cpu_limit)
        ratio = used / (ready_now * aim) if ready_now else math.inf
        current = len(alive)
        wanted = current if abs(ratio - 1) <= TOLERANCE else math.ceil(used / aim - 1e-9)
        wanted = min(most, max(MIN_REPLICAS, wanted))
        while recommendations and now - recommendations[0][0] >= SCALE_DOWN_STABILIZATION_SECONDS:
            recommendations.popleft()
        recommendations.append((now, wanted))
        if wanted < current:
            wanted = min(current, max(value for _, value in recommendations))
        else:
            wanted = min(wanted, max(2 * current, current + 4))
        if wanted > current and now < seconds:
            for _ in range(wanted - current):
                pod = [now + start, math.inf]
                pods.append(pod)
                alive.append(pod)
                starting.append(pod)
            cold_out[now] += wanted - current
        elif wanted < current:
            alive.sort(key=lambda pod: pod[0])
            for pod in alive[wanted:]:
                pod[1] = float(now)  # the newest (not yet ready first) go
            del alive[wanted:]
        previous = now

    events = sorted([(pod[0], 1) for pod in pods if pod[0] < pod[1]] + [(pod[1], -1) for pod in pods
                                                                          if pod[0] < pod[1] < math.inf])
    step_times = np.array([time for time, _ in events])
    step_values = np.cumsum([change for _, change in events])
    times = np.arange(seconds, dtype=float)
    at_start = step_values[np.clip(np.searchsorted(step_times, times, side="right") - 1, 0, None)]
    at_end = step_values[np.clip(np.searchsorted(step_times, times + 1, side="right") - 1, 0, None)]
    waiting = queueing.backlog(counts, np.minimum(at_start, at_end) * per_pod)
    waits, weights = [], []
    for begin, end in queueing.episodes(waiting > 1e-9):
        episode, weight = queueing.episode_waits(arrivals, begin, end, step_times, step_values, per_pod)
        waits.append(episode)
        weights.append(weight)
    all_waits = np.concatenate(waits) if waits else np.zeros(0)
    all_weights = np.concatenate(weights) if weights else np.zeros(0)
    return AlwaysOnRun(requests=arrivals.astype(np.int64), replicas=replicas_out, ready=at_end.astype(np.int64),
                       cold_starts=cold_out, waits=queueing.wait_summary(all_waits, all_weights, float(counts.sum())))

