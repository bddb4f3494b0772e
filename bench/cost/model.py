"""The cost model: from measured per-endpoint numbers to billable instance time and money. No I/O here.

Measured per endpoint (from the function's own metrics, before and after a load run): requests, CPU-seconds,
latency (histogram), peak RSS. From them, under the function's Knative settings:

* instance-seconds per request (steady load) = max(mean latency / autoscaling target,
  CPU-seconds per request / CPU limit): a replica holds `target` requests at once, and cannot do more CPU
  than its limit;
* cluster cost (OpenCost-style) = instance-seconds x (max(CPU request, CPU used) x $/vCPU-s
  + max(memory request, peak RSS) x $/GiB-s);
* request-based cost (Cloud Run-style) = billable seconds x (CPU limit x $/vCPU-s + memory limit x $/GiB-s)
  + $/request, where an instance is billed in 100 ms steps while it handles at least one request, so concurrent
  requests share instance time (per request: on a steadily busy instance, or at a given rate); the monthly free
  tier is taken off the monthly bill; `make simulate` replays whole days instead;
* monthly: per hour of the traffic profile, with Poisson arrivals at rate r, a scale-to-zero replica is up
  for 3600 x (1 - exp(-r x retention)) seconds (retention = Knative's stable window + scale-to-zero grace),
  or more when busy; the seed's always-on design keeps max(2, needed) replicas every hour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Knative defaults (config-autoscaler): stable-window 60 s + scale-to-zero-grace-period 30 s.
SCALE_TO_ZERO_RETENTION_SECONDS = 90.0
ALWAYS_ON_REPLICAS = 2
CLOUD_RUN_CONCURRENCY = 80  # Cloud Run's default maximum of concurrent requests per instance


@dataclass(frozen=True)
class Measured:
    function: str
    requests: int
    errors: int
    client_errors: int
    cpu_seconds: float
    latency_mean: float
    p50: float
    p95: float
    p99: float
    peak_rss_bytes: float

    @property
    def cpu_per_request(self) -> float:
        return self.cpu_seconds / self.requests if self.requests else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Knobs:
    """A function's Knative settings that decide what it is billed for."""

    target: int
    container_concurrency: int
    min_scale: int
    cpu_request: float  # vCPU
    cpu_limit: float
    memory_request_gib: float
    memory_limit_gib: float


def quantile(q: float, buckets: dict[str, float]) -> float:
    """Prometheus' histogram_quantile over cumulative buckets {le: count}, linear inside a bucket."""
    ordered = sorted(((math.inf if le == "+Inf" else float(le), count) for le, count in buckets.items()))
    if not ordered or ordered[-1][1] <= 0:
        return 0.0
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return ordered[-2][0] if len(ordered) > 1 else 0.0


def instance_seconds_per_request(measured: Measured, knobs: Knobs) -> float:
    return max(measured.latency_mean / knobs.target, measured.cpu_per_request / knobs.cpu_limit)


def cluster_cost_per_request(measured: Measured, knobs: Knobs, sheet: dict) -> float:
    seconds = instance_seconds_per_request(measured, knobs)
    if seconds <= 0:
        return 0.0
    cpu_used = measured.cpu_per_request / seconds
    cpu = max(knobs.cpu_request, cpu_used)
    memory = max(knobs.memory_request_gib, measured.peak_rss_bytes / 2**30)
    return seconds * (cpu * sheet["vcpu_hour"] + memory * sheet["gib_hour"]) / 3600


def billed_seconds(latency: float, rounding: float) -> float:
    return math.ceil(latency / rounding - 1e-9) * rounding if latency > 0 else 0.0


def busy_billed_seconds(rate: float, latency: float, rounding: float) -> float:
    """Expected billable seconds per second of one instance receiving Poisson arrivals at `rate` (req/s), each
    `latency` long, billed in `rounding` steps while it handles at least one request (concurrent requests share
    them): a billed stretch lasts L on average, then the instance idles until the next arrival, so the billed share
    is rate·L / (1 + rate·L); L = max(d + r·(e^ρ - 1), d + E[busy period] - latency + r/2·(1 - e^-ρ)) with d the
    latency rounded up and ρ = rate·latency (bench/sim/cloudrun.py busy_billable, checked against exact billing)."""
    if rate <= 0 or latency <= 0:
        return 0.0
    load = min(rate * latency, 50.0)
    first = billed_seconds(latency, rounding)
    stretch = max(first + rounding * math.expm1(load),
                  first + math.expm1(load) / rate - latency + rounding / 2 * -math.expm1(-load))
    return min(1.0, max(rate * stretch / (1 + rate * stretch), -math.expm1(-load)))


def request_based_seconds(measured: Measured, knobs: Knobs, sheet: dict, rate: float | None = None) -> float:
    """Billable instance-seconds per request. Concurrent requests on one instance share its billable time (Cloud
    Run bills instance time, never each request its own 100 ms): at `rate` req/s the requests are spread over the
    instances their concurrency needs; without a rate, on a steadily busy instance."""
    concurrency = min(knobs.container_concurrency or CLOUD_RUN_CONCURRENCY, CLOUD_RUN_CONCURRENCY)
    floor = max(measured.latency_mean / concurrency, measured.cpu_per_request / knobs.cpu_limit)
    if rate is None:
        return floor
    if rate <= 0:
        return 0.0
    instances = max(1, math.ceil(rate * measured.latency_mean / concurrency))
    seconds = instances * busy_billed_seconds(rate / instances, measured.latency_mean, sheet["rounding_seconds"])
    return max(seconds / rate, floor)


def request_based_cost_per_request(measured: Measured, knobs: Knobs, sheet: dict) -> float:
    seconds = request_based_seconds(measured, knobs, sheet)
    return (seconds * (knobs.cpu_limit * sheet["vcpu_second"] + knobs.memory_limit_gib * sheet["gib_second"])
            + sheet["per_million_requests"] / 1e6)


def cost_per_request(measured: Measured, knobs: Knobs, sheet: dict) -> float:
    if sheet["kind"] == "cluster":
        return cluster_cost_per_request(measured, knobs, sheet)
    return request_based_cost_per_request(measured, knobs, sheet)


DAYS_PER_MONTH = 30.0


def monthly_cluster_cost(measured: Measured, knobs: Knobs, sheet: dict, per_day: float, hourly_share: list[float],
                         always_on: bool) -> float:
    """A month of one function on a cluster: replica time priced at max(request, usage), hour by hour."""
    per_request = instance_seconds_per_request(measured, knobs)
    memory = max(knobs.memory_request_gib, measured.peak_rss_bytes / 2**30)
    cost = 0.0
    for share in _normalised(hourly_share):
        rate = per_day * share / 3600
        busy = rate * 3600 * per_request  # replica-seconds the load needs
        if always_on:
            replica_seconds = max(ALWAYS_ON_REPLICAS, math.ceil(busy / 3600)) * 3600
        else:
            idle_tail = 3600 * (1 - math.exp(-rate * SCALE_TO_ZERO_RETENTION_SECONDS))
            replica_seconds = max(knobs.min_scale * 3600, idle_tail, busy)
        cpu_seconds = max(knobs.cpu_request * replica_seconds, rate * 3600 * measured.cpu_per_request)
        cost += (cpu_seconds * sheet["vcpu_hour"] + replica_seconds * memory * sheet["gib_hour"]) / 3600
    return cost * DAYS_PER_MONTH


def monthly_request_based_usage(measured: Measured, knobs: Knobs, sheet: dict, per_day: float,
                                hourly_share: list[float]) -> tuple[float, float, float]:
    """(vCPU-seconds, GiB-seconds, requests) of one function for a month, before the free tier."""
    instance_seconds = 0.0
    for share in _normalised(hourly_share):
        rate = per_day * share / 3600
        instance_seconds += rate * 3600 * request_based_seconds(measured, knobs, sheet, rate)
    instance_seconds *= DAYS_PER_MONTH
    return instance_seconds * knobs.cpu_limit, instance_seconds * knobs.memory_limit_gib, per_day * DAYS_PER_MONTH


def request_based_bill(usage: list[tuple[float, float, float]], sheet: dict) -> float:
    """The month's bill for all functions together: the free tier applies once per account."""
    free = sheet["free_tier_per_month"]
    vcpu = max(0.0, sum(u[0] for u in usage) - free["vcpu_seconds"])
    memory = max(0.0, sum(u[1] for u in usage) - free["gib_seconds"])
    requests = max(0.0, sum(u[2] for u in usage) - free["requests"])
    return vcpu * sheet["vcpu_second"] + memory * sheet["gib_second"] + requests * sheet["per_million_requests"] / 1e6


def _normalised(shares: list[float]) -> list[float]:
    total = sum(shares)
    return [share / total for share in shares] if total else [1 / 24] * 24
