"""Runs the three platforms over a traffic and gathers what summary.json, timeline.csv and the report show."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from bench.sim import always_on, cloudrun, costs, inputs, knative, traces
from bench.sim.config import ServiceConfig, default_service
from bench.sim.inputs import (
    CLOUD_RUN_INSTANCE_START_SECONDS,
    KNATIVE_POD_START_SECONDS,
    EndpointInputs,
)

BREAK_EVEN_LEVELS = (10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)  # requests per day
BREAK_EVEN_SEED = 7
SATURATED_SHARE = 0.001  # a level at which requests queue behind max-scale pods this often is past what it serves


@dataclass
class EndpointRuns:
    name: str
    config: ServiceConfig
    inputs: EndpointInputs
    knative: knative.KnativeRun
    cloud_run: cloudrun.CloudRunRun
    always_on: always_on.AlwaysOnRun


@dataclass
class Simulation:
    traffic: traces.Traffic
    endpoints: list[EndpointRuns]
    sheets: dict
    cloud_run_concurrency: int
    months: float  # how many simulated spans make a month
    notes: list[str] = field(default_factory=list)


def resolve(traffic: traces.Traffic, services: dict[str, ServiceConfig], measured: dict[str, EndpointInputs],
            mapping: dict, durations: str) -> tuple[dict[str, ServiceConfig], dict[str, EndpointInputs], list[str]]:
    """Each traffic endpoint's manifest and costs: its own, its mapping template's, or Knative's defaults."""
    configs, chosen, notes = {}, {}, []
    for name in traffic.arrivals:
        template = traces.template_of(name, mapping)
        if name in services:
            configs[name], base = services[name], measured.get(name)
        elif template in services:
            configs[name] = dataclasses.replace(services[template], name=name)
            base = measured.get(template)
            notes.append(f"{name}: configured like {template} (the mapping's template)")
        else:
            configs[name], base = default_service(name), None
            notes.append(f"{name}: no manifest in knative/services: Knative's defaults")
        base = base or inputs.assumed(name)
        trace_time = traffic.trace_service_time.get(name)
        if trace_time and (durations == "trace" or name not in services):
            base = base.with_service_time(trace_time, "trace: the function's average execution time (*_run.csv)")
        chosen[name] = base
    return configs, chosen, notes


def run_endpoint(name: str, arrivals: np.ndarray, config: ServiceConfig, costs_in: EndpointInputs,
                 cloud_run_concurrency: int) -> EndpointRuns:
    return EndpointRuns(name=name, config=config, inputs=costs_in,
                        knative=knative.simulate(arrivals, config, costs_in),
                        cloud_run=cloudrun.simulate(arrivals, config, costs_in, cloud_run_concurrency),
                        always_on=always_on.simulate(arrivals, config, costs_in))


def simulate(traffic: traces.Traffic, configs: dict[str, ServiceConfig], chosen: dict[str, EndpointInputs],
             cloud_run_concurrency: int = cloudrun.CONCURRENCY) -> Simulation:
    runs = [run_endpoint(name, traffic.arrivals[name], configs[name], chosen[name], cloud_run_concurrency)
            for name in sorted(traffic.arrivals)]
    return Simulation(traffic=traffic, endpoints=runs, sheets=costs.price_sheets(),
                      cloud_run_concurrency=cloud_run_concurrency,
                      months=traces.months_factor(traffic.seconds, costs.DAYS_PER_MONTH))


# ---- per endpoint and total figures ---------------------------------------------------------------------------

def _waits(waits: dict) -> dict:
    return {"waited_share": waits["waited_share"], "wait_p50_ms": waits["wait_p50_ms"],
            "wait_p99_ms": waits["wait_p99_ms"], "waiting_p50_ms": waits["waiting_p50_ms"],
            "waiting_p99_ms": waits["waiting_p99_ms"]}


def knative_cost(run: EndpointRuns, sheet: dict) -> float:
    cpu, memory = costs.pod_requests(run.config, knative=True)
    used = run.knative.requests * run.inputs.cpu_per_request
    return costs.allocated_cost(run.knative.pods, cpu, memory, used, run.inputs.rss_gib, sheet)


def always_on_cost(run: EndpointRuns, sheet: dict) -> float:
    cpu, memory = costs.pod_requests(run.config, knative=False)
    used = run.always_on.requests * run.inputs.cpu_per_request
    return costs.allocated_cost(run.always_on.replicas, cpu, memory, used, run.inputs.rss_gib, sheet)


def cloud_run_usage(run: EndpointRuns, months: float) -> tuple[tuple, tuple]:
    """(request-based, instance-based) monthly (vCPU-s, GiB-s, requests)."""
    billable = float(run.cloud_run.billable_seconds.sum()) * months
    alive = float(run.cloud_run.alive.sum()) * months
    requests = float(run.cloud_run.requests.sum()) * months
    return ((billable * run.config.cpu_limit, billable * run.config.memory_limit_gib, requests),
            (alive * run.config.cpu_limit, alive * run.config.memory_limit_gib, requests))


def endpoint_rows(simulation: Simulation) -> dict[str, dict]:
    months, sheets = simulation.months, simulation.sheets
    rows = {}
    for run in simulation.endpoints:
        requests = float(run.knative.requests.sum())
        monthly_requests = requests * months
        k_cost = knative_cost(run, sheets["cluster"]) * months
        a_cost = always_on_cost(run, sheets["cluster"]) * months
        by_request, by_instance = cloud_run_usage(run, months)
        r_cost = costs.usage_cost(by_request, sheets["request-based"])
        i_cost = costs.usage_cost(by_instance, sheets["instance-based"])
        rows[run.name] = {
            "requests": int(requests),
            "knative": {"pod_seconds": int(run.knative.pods.sum()), "cold_starts": int(run.knative.cold_starts.sum()),
                        **_waits(run.knative.waits), "peak_pods": int(run.knative.pods.max(initial=0)),
                        "panic_seconds": int(run.knative.panic.sum()), "rejected": round(run.knative.rejected, 1),
                        "cold_start_seconds": round(run.knative.cold_start_seconds, 3),
                        "monthly_usd": k_cost, "usd_per_million": costs.per_million(k_cost, monthly_requests)},
            "cloud_run": {"instance_seconds": int(run.cloud_run.alive.sum()),
                          "billable_seconds": float(run.cloud_run.billable_seconds.sum()),
                          "cold_starts": int(run.cloud_run.cold_starts.sum()), **_waits(run.cloud_run.waits),
                          "peak_instances": int(run.cloud_run.alive.max(initial=0)),
                          "concurrency": run.cloud_run.concurrency,
                          "monthly_usd_request_based": r_cost,
                          "usd_per_million_request_based": costs.per_million(r_cost, monthly_requests),
                          "monthly_usd_instance_based": i_cost,
                          "usd_per_million_instance_based": costs.per_million(i_cost, monthly_requests)},
            "always_on": {"pod_seconds": int(run.always_on.replicas.sum()),
                          "cold_starts": int(run.always_on.cold_starts.sum()), **_waits(run.always_on.waits),
                          "peak_pods": int(run.always_on.replicas.max(initial=0)),
                          "monthly_usd": a_cost, "usd_per_million": costs.per_million(a_cost, monthly_requests)},
        }
    return rows


def totals(simulation: Simulation, rows: dict[str, dict]) -> dict:
    months, sheets, seconds = simulation.months, simulation.sheets, simulation.traffic.seconds
    runs = simulation.endpoints
    requests = sum(row["requests"] for row in rows.values())

    def share(platform: str) -> dict:
        waited = sum(row[platform]["waited_share"] * row["requests"] for row in rows.values())
        return {"cold_starts": sum(row[platform]["cold_starts"] for row in rows.values()),
                "waited_share": waited / requests if requests else 0.0}

    k_nodes = costs.node_hours({run.name: run.knative.pods for run in runs},
                               {run.name: costs.pod_requests(run.config, True) for run in runs}, seconds)
    a_nodes = costs.node_hours({run.name: run.always_on.replicas for run in runs},
                               {run.name: costs.pod_requests(run.config, False) for run in runs}, seconds)
    usages = [cloud_run_usage(run, months) for run in runs]
    monthly_requests = requests * months
    knative_bill = costs.node_bill(k_nodes, seconds, sheets["cluster"]) * months
    always_bill = costs.node_bill(a_nodes, seconds, sheets["cluster"]) * months
    request_bill = costs.monthly_bill([usage[0] for usage in usages], sheets["request-based"])
    instance_bill = costs.monthly_bill([usage[1] for usage in usages], sheets["instance-based"])
    return {
        "requests": requests,
        "knative": {"pod_seconds": sum(row["knative"]["pod_seconds"] for row in rows.values()), **share("knative"),
                    "node_hours": float(k_nodes.sum()), "peak_nodes": int(k_nodes.max(initial=0)),
                    "monthly_usd_nodes": knative_bill,
                    "monthly_usd_allocated": sum(row["knative"]["monthly_usd"] for row in rows.values()),
                    "usd_per_million": costs.per_million(knative_bill, monthly_requests)},
        "cloud_run": {"instance_seconds": sum(row["cloud_run"]["instance_seconds"] for row in rows.values()),
                      **share("cloud_run"),
                      "monthly_usd_request_based": request_bill,
                      "monthly_usd_instance_based": instance_bill,
                      "usd_per_million_request_based": costs.per_million(request_bill, monthly_requests),
                      "usd_per_million_instance_based": costs.per_million(instance_bill, monthly_requests),
                      "free_tier_applied": True},
        "always_on": {"pod_seconds": sum(row["always_on"]["pod_seconds"] for row in rows.values()),
                      **share("always_on"), "node_hours": float(a_nodes.sum()),
                      "peak_nodes": int(a_nodes.max(initial=0)), "monthly_usd_nodes": always_bill,
                      "monthly_usd_allocated": sum(row["always_on"]["monthly_usd"] for row in rows.values()),
                      "usd_per_million": costs.per_million(always_bill, monthly_requests)},
    }


# ---- break-even -------------------------------------------------------------------------------------------------

def break_even(simulation: Simulation, rows: dict[str, dict], hourly_share: list[float],
               levels: tuple[int, ...] = BREAK_EVEN_LEVELS) -> list[dict]:
    """Per endpoint: the requests per day below which scale to zero (Knative) costs less than always-on, found by
    simulating a day of the shop's diurnal shape at each level; with the cold-start share paid at that level."""
    sheet = simulation.sheets["cluster"]
    weights = traces.diurnal_weights(hourly_share)
    cache: dict = {}
    table = []
    for run in simulation.endpoints:
        key = (dataclasses.replace(run.config, name=""), run.inputs.service_time, run.inputs.cpu_per_request,
               run.inputs.rss_gib, run.inputs.process_start)
        if key not in cache:
            cache[key] = _levels(run, weights, levels, sheet)
        points = cache[key]
        servable = [point for point in points if not point["saturated"]] or points[:1]
        crossing, share_at = _crossing(servable)
        day = rows[run.name]
        table.append({
            "endpoint": run.name,
            "requests_per_day": round(day["requests"] * simulation.months / costs.DAYS_PER_MONTH),
            "knative_monthly_usd": day["knative"]["monthly_usd"],
            "always_on_monthly_usd": day["always_on"]["monthly_usd"],
            "break_even_requests_per_day": crossing,
            "cold_start_share_at_break_even": share_at,
            "cold_start_share_today": day["knative"]["waited_share"],
            "wait_p99_ms_today": day["knative"]["wait_p99_ms"],
            "cold_starts_over_1_percent_below": _latency_price(servable, 0.01),  # "any" at every level
            "saturated_from_requests_per_day": next((point["requests_per_day"] for point in points
                                                     if point["saturated"]), None),
            "levels": points,
        })
    return table


def _latency_price(points: list[dict], share: float) -> float | str | None:
    """The requests per day below which more than `share` of the requests wait for a cold start (log-linear
    between levels): "any" when even the top level has that many, None when not even the lowest has."""
    if points[-1]["cold_start_share"] > share:
        return "any"
    for lower, upper in zip(reversed(points[:-1]), reversed(points[1:])):
        if lower["cold_start_share"] > share >= upper["cold_start_share"]:
            fraction = (lower["cold_start_share"] - share) / (lower["cold_start_share"] - upper["cold_start_share"])
            low, high = math.log10(lower["requests_per_day"]), math.log10(upper["requests_per_day"])
            return 10 ** (low + fraction * (high - low))
    return None


def _levels(run: EndpointRuns, weights: np.ndarray, levels: tuple[int, ...], sheet: dict) -> list[dict]:
    rng = np.random.default_rng(BREAK_EVEN_SEED)
    points = []
    for level in levels:
        arrivals = rng.poisson(weights * level).astype(np.int64)
        trial = EndpointRuns(name=run.name, config=run.config, inputs=run.inputs,
                             knative=knative.simulate(arrivals, run.config, run.inputs),
                             cloud_run=None, always_on=always_on.simulate(arrivals, run.config, run.inputs))
        held_at_max = (trial.knative.ready_pods >= run.config.max_scale) if run.config.max_scale else False
        saturated = float(np.mean((trial.knative.queued > 0) & held_at_max)) > SATURATED_SHARE
        points.append({"requests_per_day": level,
                       "knative_monthly_usd": knative_cost(trial, sheet) * costs.DAYS_PER_MONTH,
                       "always_on_monthly_usd": always_on_cost(trial, sheet) * costs.DAYS_PER_MONTH,
                       "cold_start_share": trial.knative.waits["waited_share"], "saturated": saturated})
    return points


def _crossing(points: list[dict]) -> tuple[float | None, float | None]:
    """The level where Knative's cost reaches always-on's (log-linear between simulated levels): 0 when it never
    is cheaper, None when it stays cheaper at every level the endpoint can serve (max-scale not saturated)."""
    previous = None
    for point in points:
        gap = point["knative_monthly_usd"] - point["always_on_monthly_usd"]
        if gap >= 0:
            if previous is None:
                return 0.0, point["cold_start_share"]
            before = previous["knative_monthly_usd"] - previous["always_on_monthly_usd"]
            fraction = -before / (gap - before) if gap != before else 0.0
            low, high = math.log10(previous["requests_per_day"]), math.log10(point["requests_per_day"])
            share = previous["cold_start_share"] + fraction * (point["cold_start_share"] - previous["cold_start_share"])
            return 10 ** (low + fraction * (high - low)), share
        previous = point
    return None, None


PLATFORM_CONSTANTS = {
    "knative_pod_start_seconds": KNATIVE_POD_START_SECONDS,
    "cloud_run_instance_start_seconds": CLOUD_RUN_INSTANCE_START_SECONDS,
    "cloud_run_target_utilization": cloudrun.TARGET_UTILIZATION,
    "cloud_run_idle_retention_seconds": cloudrun.IDLE_RETENTION_SECONDS,
    "always_on_min_replicas": always_on.MIN_REPLICAS,
    "always_on_target_cpu": always_on.TARGET_CPU,
    "always_on_sync_seconds": always_on.SYNC_SECONDS,
    "always_on_scale_down_stabilization_seconds": always_on.SCALE_DOWN_STABILIZATION_SECONDS,
}
