"""Requests as a fluid, second by second: how many are in flight, how many wait, and how long each waited.

A request that arrives in second t arrives uniformly inside it (what a Poisson process does given its count) and
holds a slot of the function for its service time. Waiting requests are served first come, first served as soon as
a ready replica has room: a replica serves at most `capacity_per_replica` requests a second (its concurrency limit
over the service time, or its CPU limit over the CPU per request, whichever is lower).
"""

from __future__ import annotations

import math

import numpy as np

WAIT_GRID_SECONDS = 0.01  # the resolution of the added waits
WAITED = 0.001  # a request counts as having waited when it waited longer than this


def overlap_kernel(service_time: float) -> np.ndarray:
    """kernel[j]: the expected share of one second that a request arriving (uniformly) in second 0 spends in second j.
    The kernel sums to the service time."""
    if service_time <= 0:
        return np.zeros(1)
    starts = (np.arange(2000) + 0.5) / 2000
    ends = starts + service_time
    kernel = np.array([np.clip(np.minimum(ends, j + 1) - np.maximum(starts, j), 0, None).mean()
                       for j in range(math.ceil(service_time) + 1)])
    return np.trim_zeros(kernel, "b") if kernel.any() else np.zeros(1)


def in_flight(served: np.ndarray, service_time: float) -> np.ndarray:
    """Average requests in service in each second, from the requests that started in each second."""
    kernel = overlap_kernel(service_time)
    return np.convolve(served.astype(float), kernel)[: len(served)]


def capacity_per_replica(container_concurrency: int, service_time: float, cpu_per_request: float,
                         cpu_limit: float) -> float:
    """Requests a second one replica can start: min(concurrency / service time, CPU limit / CPU per request)."""
    bounds = [math.inf]
    if container_concurrency and service_time > 0:
        bounds.append(container_concurrency / service_time)
    if cpu_per_request > 0 and cpu_limit > 0:
        bounds.append(cpu_limit / cpu_per_request)
    return min(bounds) if min(bounds) < math.inf else 1e12


def backlog(arrivals: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Requests still waiting at the end of each second (Lindley's recursion, vectorised)."""
    steps = np.concatenate([[0.0], np.cumsum(arrivals.astype(float) - capacity)])
    return (steps - np.minimum.accumulate(steps))[1:]


def episodes(waiting: np.ndarray, pad: int = 2) -> list[tuple[int, int]]:
    """[start, end) runs of seconds that hold every wait: from the first second with a request that could not start
    at once to a couple of seconds after the queue emptied."""
    marked = np.flatnonzero(waiting)
    if not len(marked):
        return []
    runs = []
    start = previous = int(marked[0])
    for second in marked[1:].tolist():
        if second > previous + pad + 1:
            runs.append((start, previous + pad + 1))
            start = second
        previous = second
    runs.append((start, previous + pad + 1))
    return runs


def episode_waits(arrivals: np.ndarray, start: int, end: int, step_times: np.ndarray, step_values: np.ndarray,
                  per_replica: float, grid: float = WAIT_GRID_SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """Waits (seconds) and how many requests had each, for the arrivals in [start, end), first come first served.
    From step_times[i] on (sorted), step_values[i] replicas are ready. The queue is empty at `start`."""
    end = min(end, len(arrivals))
    if end <= start:
        return np.zeros(0), np.zeros(0)
    cells_per_second = round(1 / grid)
    times = start + np.arange((end - start) * cells_per_second) * grid
    per_cell = np.repeat(arrivals[start:end].astype(float) / cells_per_second, cells_per_second)
    if not len(step_times):
        step_times, step_values = np.array([-math.inf]), np.array([0])
    index = np.searchsorted(step_times, times + grid / 2, side="right") - 1
    ready = np.where(index >= 0, step_values[np.clip(index, 0, None)], 0)
    arrived = np.cumsum(per_cell)
    capacity = np.cumsum(ready * per_replica * grid)
    started = capacity + np.minimum.accumulate(np.minimum(arrived - capacity, 0.0))
    middles = arrived - per_cell / 2
    starts_at = np.searchsorted(started, middles - 1e-9, side="left")
    waits = np.clip(starts_at - np.arange(len(times)), 0, None) * grid
    waits[starts_at >= len(times)] = (len(times) - np.arange(len(times)))[starts_at >= len(times)] * grid
    keep = per_cell > 0
    return waits[keep], per_cell[keep]


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    if not len(values) or weights.sum() <= 0:
        return 0.0
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, q * cumulative[-1], side="left").clip(0, len(values) - 1)])


def wait_summary(waits: np.ndarray, weights: np.ndarray, requests: float) -> dict:
    """Share of requests that waited, and p50/p99 of the added wait over all requests and over those that waited."""
    waited = waits > WAITED
    waited_requests = float(weights[waited].sum())
    others = max(0.0, requests - waited_requests)
    every_wait = np.concatenate([waits[waited], [0.0]])
    every_weight = np.concatenate([weights[waited], [others]])
    return {
        "requests": requests,
        "waited": round(waited_requests, 1),
        "waited_share": waited_requests / requests if requests else 0.0,
        "wait_p50_ms": 1000 * weighted_quantile(every_wait, every_weight, 0.50),
        "wait_p99_ms": 1000 * weighted_quantile(every_wait, every_weight, 0.99),
        "waiting_p50_ms": 1000 * weighted_quantile(waits[waited], weights[waited], 0.50),
        "waiting_p99_ms": 1000 * weighted_quantile(waits[waited], weights[waited], 0.99),
        "wait_mean_ms": 1000 * float((waits[waited] * weights[waited]).sum()) / requests if requests else 0.0,
    }
