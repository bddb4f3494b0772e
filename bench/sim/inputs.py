"""Per-endpoint costs the simulation replays traffic with: measured on this shop when the results are there, assumed
(and said so) when they are not.

Measured: `make cost-report` writes bench/results/cost.json (latency p50, CPU-seconds per request, peak RSS per
endpoint function) and `make bench` writes bench/results/bench.json (cold start: spawn -> first answer, median).
Assumed otherwise: the figures below, each with where it comes from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.sim.config import ROOT

RESULTS = ROOT / "bench" / "results"

# Knative's share of a cold start before our process starts: scheduling, image present, sandbox, queue-proxy.
# ~0.8 s on a healthy cluster (knative/serving#15477); 2-4 s in kperf's figures, ~12 s near 1,000 services.
KNATIVE_POD_START_SECONDS = 0.8
# Cloud Run's share of an instance start before our process starts: not published as a figure; assumed the same.
CLOUD_RUN_INSTANCE_START_SECONDS = 0.8

# README "Benchmarks" (2026-11-25, this project's 2-core machine): used when bench/results has no measurement.
ASSUMED_CPU_SECONDS = {"catalog-get-product": 0.00244, "cart-get-cart": 0.00183, "orders-create-order": 0.02045}
ASSUMED_DEFAULT_CPU_SECONDS = 0.0025  # like GET /products/{id}
ASSUMED_PROCESS_START_SECONDS = 1.0  # endpoint functions: 838-1209 ms spawn -> first answer
ASSUMED_RSS_GIB = 60 / 1024
ASSUMED_MIN_SERVICE_SECONDS = 0.010


@dataclass(frozen=True)
class EndpointInputs:
    service_time: float  # seconds a request holds a slot of the function (its latency)
    cpu_per_request: float  # CPU-seconds
    rss_gib: float
    process_start: float  # seconds from spawn to the first answer
    sources: dict = field(default_factory=dict, compare=False)  # field -> "measured: ..." or "assumed: ..."

    def with_service_time(self, seconds: float, source: str) -> EndpointInputs:
        return replace(self, service_time=seconds, sources={**self.sources, "service_time": source})


def assumed(name: str) -> EndpointInputs:
    cpu = ASSUMED_CPU_SECONDS.get(name, ASSUMED_DEFAULT_CPU_SECONDS)
    cpu_source = ("assumed: README benchmark figure" if name in ASSUMED_CPU_SECONDS
                  else "assumed: like GET /products/{id} in the README benchmarks")
    return EndpointInputs(
        service_time=max(ASSUMED_MIN_SERVICE_SECONDS, 3 * cpu), cpu_per_request=cpu, rss_gib=ASSUMED_RSS_GIB,
        process_start=ASSUMED_PROCESS_START_SECONDS,
        sources={"service_time": "assumed: 3 x CPU per request, at least 10 ms", "cpu_per_request": cpu_source,
                 "rss": "assumed: 60 MiB", "process_start": "assumed: README cold-start range 838-1209 ms"})


def _number(row: dict, key: str) -> float | None:
    try:
        value = float(row[key])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value > 0 else None


def _measured_label(path: Path) -> str:
    """How a figure read from a result file is credited: the file, relative to the project when inside it."""
    return f"measured: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"


def load(names: list[str], results: Path = RESULTS) -> tuple[dict[str, EndpointInputs], dict]:
    """Inputs for each endpoint, and which result files were found (for summary.json)."""
    inputs = {name: assumed(name) for name in names}
    found = {}
    cost = results / "cost.json"
    if cost.exists():
        data = json.loads(cost.read_text())
        label = _measured_label(cost)
        found["cost.json"] = {"path": str(cost), "source": data.get("source", "")}
        for row in data.get("endpoints", []):
            name = row.get("function")
            if name not in inputs:
                continue
            sources = dict(inputs[name].sources)
            service, cpu, rss = _number(row, "p50_ms"), _number(row, "cpu_ms_per_request"), _number(row, "peak_rss_mib")
            changes = {}
            if service:
                changes["service_time"], sources["service_time"] = service / 1000, f"{label} (latency p50)"
            if cpu:
                changes["cpu_per_request"], sources["cpu_per_request"] = cpu / 1000, f"{label} (CPU per request)"
            if rss:
                changes["rss_gib"], sources["rss"] = rss / 1024, f"{label} (peak RSS)"
            inputs[name] = replace(inputs[name], **changes, sources=sources)
    bench = results / "bench.json"
    if bench.exists():
        data = json.loads(bench.read_text())
        label = _measured_label(bench)
        found["bench.json"] = {"path": str(bench), "date": data.get("date", "")}
        for row in data.get("cold_start", []):
            name, start = row.get("function"), _number(row, "median_ms")
            if name in inputs and start:
                inputs[name] = replace(inputs[name], process_start=start / 1000,
                                       sources={**inputs[name].sources,
                                                "process_start": f"{label} (cold start median, {data.get('date', '')})"})
    return inputs, found
