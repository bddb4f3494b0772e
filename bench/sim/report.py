"""The simulation's three outputs: timeline.csv (the KPA, second by second), summary.json and a self-contained HTML
report (inline SVG charts, no script, no external file)."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from bench.sim import costs, engine

TIMELINE_COLUMNS = "second,endpoint,requests,concurrency,ready_pods,desired_pods,panic,cold_starts,queued"
PLATFORMS = ("knative", "cloud_run", "always_on")
LABELS = {"knative": "Knative (KPA)", "cloud_run": "Cloud Run", "always_on": "Always-on (2 + HPA)",
          "cloud_run_request": "Cloud Run, request-based", "cloud_run_instance": "Cloud Run, instance-based"}
COLOURS = {"knative": "#3366cc", "cloud_run": "#2e8b57", "always_on": "#c0392b", "cloud_run_request": "#2e8b57",
           "cloud_run_instance": "#8fbc8f", "requests": "#d0d0d0"}
CHARTED_ENDPOINTS = 12


def write_timeline(simulation: engine.Simulation, path: Path) -> None:
    """One row per second per endpoint, endpoint by endpoint."""
    with open(path, "w") as handle:
        handle.write(TIMELINE_COLUMNS + "\n")
        for run in simulation.endpoints:
            k = run.knative
            name = run.name
            handle.writelines(
                f"{second},{name},{requests},{concurrency:.3f},{ready},{desired},{panic},{cold},{queued:.1f}\n"
                for second, requests, concurrency, ready, desired, panic, cold, queued in zip(
                    range(len(k.requests)), k.requests.tolist(), k.concurrency.tolist(), k.ready_pods.tolist(),
                    k.desired_pods.tolist(), k.panic.tolist(), k.cold_starts.tolist(), k.queued.tolist()))


def summary(simulation: engine.Simulation, rows: dict, total: dict, table: list[dict], found: dict, scale: float,
            elapsed: dict, notes: list[str]) -> dict:
    traffic = simulation.traffic
    return {
        "trace": {"name": traffic.name, "description": traffic.description, "seconds": traffic.seconds,
                  "requests": traffic.total, "scale": scale, "trace_functions": traffic.origin,
                  "notes": traffic.notes},
        "inputs": {
            "result_files": found or "No measured results in bench/results (make cost-report, make bench): every "
                                      "per-endpoint input is assumed",
            "platform": engine.PLATFORM_CONSTANTS,
            "node": vars(costs.NODE) | {"source": "assumed: GKE e2-standard-2 allocatable"},
            "cloud_run_concurrency": simulation.cloud_run_concurrency,
            "price_sheets": {kind: {key: sheet[key] for key in ("name", "source", "date")}
                             for kind, sheet in simulation.sheets.items()},
            "endpoints": {run.name: {"service_time_ms": 1000 * run.inputs.service_time,
                                     "cpu_ms_per_request": 1000 * run.inputs.cpu_per_request,
                                     "rss_mib": 1024 * run.inputs.rss_gib,
                                     "process_start_ms": 1000 * run.inputs.process_start,
                                     "sources": run.inputs.sources} for run in simulation.endpoints},
        },
        "config": {run.name: {"container_concurrency": run.config.container_concurrency,
                              "metric": run.config.metric, "target": run.config.target,
                              "min_scale": run.config.min_scale, "max_scale": run.config.max_scale,
                              "stable_window_s": run.config.stable_window, "panic_window_s": run.config.panic_window,
                              "scale_down_delay_s": run.config.scale_down_delay,
                              "cpu_request": run.config.cpu_request, "cpu_limit": run.config.cpu_limit,
                              "memory_request_gib": run.config.memory_request_gib,
                              "memory_limit_gib": run.config.memory_limit_gib} for run in simulation.endpoints},
        "endpoints": rows,
        "total": total,
        "break_even": table,
        "months_per_span": simulation.months,
        "elapsed_seconds": elapsed,
        "notes": notes,
    }


def write_summary(data: dict, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, default=_plain) + "\n")


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return str(value)


# ---- HTML -----------------------------------------------------------------------------------------------------------

def _money(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"${value:,.0f}"
    return f"${value:,.2f}" if value >= 0.01 else f"${value:.4f}"


def _count(value: float | None) -> str:
    if value is None:
        return "none found"
    if value == 0:
        return "never cheaper"
    return f"{value:,.0f}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def _per_minute(series: np.ndarray, how=np.max) -> np.ndarray:
    minutes = math.ceil(len(series) / 60)
    padded = np.zeros(minutes * 60)
    padded[: len(series)] = series
    return how(padded.reshape(minutes, 60), axis=1)


def pods_chart(run: engine.EndpointRuns) -> str:
    """Pods (or instances) per minute on the three platforms, requests per minute as a grey area behind."""
    width, height, left, bottom, top = 430, 150, 34, 20, 18
    requests = _per_minute(run.knative.requests, np.sum)
    series = {"knative": _per_minute(run.knative.pods), "cloud_run": _per_minute(run.cloud_run.alive),
              "always_on": _per_minute(run.always_on.replicas)}
    highest = max(1.0, *(float(values.max(initial=0)) for values in series.values()))
    minutes = max(1, len(requests) - 1)

    def x(index: int) -> float:
        return left + (width - left - 8) * index / minutes

    def y(value: float, top_value: float) -> float:
        return height - bottom - (height - bottom - top) * value / top_value

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
              f'aria-label="pods over time: {html.escape(run.name)}">'),
             f'<text x="{left}" y="12" font-size="11" font-weight="bold">{html.escape(run.name)}</text>']
    if requests.max(initial=0) > 0:
        area = " ".join(f"{x(i):.1f},{y(v, float(requests.max())):.1f}" for i, v in enumerate(requests.tolist()))
        parts.append(f'<polygon points="{x(0):.1f},{y(0, 1):.1f} {area} {x(len(requests) - 1):.1f},{y(0, 1):.1f}" '
                     f'fill="{COLOURS["requests"]}" opacity="0.6"/>')
    parts.append(f'<line x1="{left}" y1="{y(0, 1)}" x2="{width - 8}" y2="{y(0, 1)}" stroke="#888"/>')
    for tick in sorted({0, math.ceil(highest / 2), math.ceil(highest)}):
        parts.append(f'<text x="{left - 4}" y="{y(tick, highest) + 3:.1f}" font-size="9" text-anchor="end">{tick}</text>')
    for hour in range(0, len(requests) // 60 + 1, 6):
        parts.append(f'<text x="{x(hour * 60):.1f}" y="{height - 6}" font-size="9" text-anchor="middle">{hour}h</text>')
    for platform in ("always_on", "cloud_run", "knative"):  # Knative on top; Cloud Run dashed where they meet
        points = " ".join(f"{x(i):.1f},{y(v, highest):.1f}" for i, v in enumerate(series[platform].tolist()))
        dash = ' stroke-dasharray="5,3"' if platform == "cloud_run" else ""
        parts.append(f'<polyline points="{points}" fill="none" stroke="{COLOURS[platform]}" stroke-width="1.4"{dash}/>')
    parts.append("</svg>")
    return "".join(parts)


def bars(title: str, rows: list[tuple[str, dict[str, float | None]]], keys: list[str], formatter, log: bool = False) -> str:
    """Horizontal grouped bars: one group per row, one bar per key."""
    bar, gap, left, width = 9, 8, 220, 460
    values = [value for _, group in rows for value in group.values() if value]
    top = max(values + [1e-12])
    low = min([value for value in values if value > 0] + [top])
    floor = 10 ** math.floor(math.log10(low)) if log and low > 0 else 0

    def length(value: float | None) -> float:
        if not value or value <= 0:
            return 0.0
        if log:
            return width * (math.log10(value) - math.log10(floor)) / max(1e-9, math.log10(top) - math.log10(floor))
        return width * value / top

    height = len(rows) * (len(keys) * bar + gap) + 44
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{max(left + width + 130, left + 175 * len(keys))}" '
              f'height="{height}" role="img" aria-label="{html.escape(title)}">')]
    y = 8
    for label, group in rows:
        parts.append(f'<text x="{left - 6}" y="{y + bar * len(keys) / 2 + 4}" text-anchor="end" font-size="11">'
                     f'{html.escape(label)}</text>')
        for key in keys:
            value = group.get(key)
            size = length(value)
            parts.append(f'<rect x="{left}" y="{y}" width="{size:.1f}" height="{bar - 1}" fill="{COLOURS[key]}"/>'
                         f'<text x="{left + size + 4:.1f}" y="{y + bar - 1}" font-size="9">{formatter(value)}</text>')
            y += bar
        y += gap
    for index, key in enumerate(keys):
        parts.append(f'<rect x="{left + 175 * index}" y="{y + 8}" width="10" height="10" fill="{COLOURS[key]}"/>'
                     f'<text x="{left + 175 * index + 14}" y="{y + 17}" font-size="11">{html.escape(LABELS[key])}</text>')
    if log:
        parts.append(f'<text x="{left}" y="{y + 34}" font-size="9" fill="#666">log scale</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(table_id: str, header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in body)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _below(value: float | str | None) -> str:
    if value is None:
        return "never"
    return "at any volume" if isinstance(value, str) else f"{value:,.0f}"


def break_even_rows(table: list[dict]) -> list[list[str]]:
    return [[row["endpoint"], f"{row['requests_per_day']:,}", _money(row["knative_monthly_usd"]),
             _money(row["always_on_monthly_usd"]), _count(row["break_even_requests_per_day"]),
             _percent(row["cold_start_share_at_break_even"]), _percent(row["cold_start_share_today"]),
             f"{row['wait_p99_ms_today']:.0f}", _below(row["cold_starts_over_1_percent_below"]),
             f"{row['saturated_from_requests_per_day']:,}" if row["saturated_from_requests_per_day"] else "–"]
            for row in table]


BREAK_EVEN_HEADER = ["endpoint", "requests/day here", "Knative $/month here", "always-on $/month here",
                     "scale to zero cheaper below (requests/day)", "cold-start share at break-even",
                     "cold-start share here", "p99 added wait here (ms)",
                     "over 1 % of requests wait for a cold start below (requests/day)",
                     "max-scale saturated at (requests/day)"]


def to_html(data: dict, simulation: engine.Simulation) -> str:
    rows, total = data["endpoints"], data["total"]
    busiest = sorted(simulation.endpoints, key=lambda run: -int(run.knative.requests.sum()))[:CHARTED_ENDPOINTS]
    charts = "".join(pods_chart(run) for run in busiest)
    legend = " ".join(f'<span style="color:{COLOURS[p]}">■ {LABELS[p]}</span>' for p in PLATFORMS)
    ordered = sorted(rows, key=lambda name: -rows[name]["requests"])
    cold = bars("share of requests that waited for a cold start",
                [(name, {p: rows[name][p]["waited_share"] for p in PLATFORMS}) for name in ordered],
                list(PLATFORMS), _percent)
    per_million = bars("cost per million requests",
                       [(name, {"knative": rows[name]["knative"]["usd_per_million"],
                                "cloud_run_request": rows[name]["cloud_run"]["usd_per_million_request_based"],
                                "cloud_run_instance": rows[name]["cloud_run"]["usd_per_million_instance_based"],
                                "always_on": rows[name]["always_on"]["usd_per_million"]})
                        for name in ordered if rows[name]["requests"]],
                       ["knative", "cloud_run_request", "cloud_run_instance", "always_on"], _money, log=True)
    monthly = bars("monthly cost, whole shop",
                   [("per month", {"knative": total["knative"]["monthly_usd_nodes"],
                                   "cloud_run_request": total["cloud_run"]["monthly_usd_request_based"],
                                   "cloud_run_instance": total["cloud_run"]["monthly_usd_instance_based"],
                                   "always_on": total["always_on"]["monthly_usd_nodes"]})],
                   ["knative", "cloud_run_request", "cloud_run_instance", "always_on"], _money)
    endpoint_table = _table("endpoints", [
        "endpoint", "requests", "Knative pod-s", "Knative cold starts", "Knative waited", "Knative p99 wait ms",
        "Knative $/M", "Cloud Run instance-s", "Cloud Run cold starts", "Cloud Run waited",
        "Cloud Run $/M (request)", "Cloud Run $/M (instance)", "always-on pod-s", "always-on $/M"],
        [[name, f"{rows[name]['requests']:,}", f"{rows[name]['knative']['pod_seconds']:,}",
          str(rows[name]["knative"]["cold_starts"]), _percent(rows[name]["knative"]["waited_share"]),
          f"{rows[name]['knative']['wait_p99_ms']:.0f}", _money(rows[name]["knative"]["usd_per_million"]),
          f"{rows[name]['cloud_run']['instance_seconds']:,}", str(rows[name]["cloud_run"]["cold_starts"]),
          _percent(rows[name]["cloud_run"]["waited_share"]),
          _money(rows[name]["cloud_run"]["usd_per_million_request_based"]),
          _money(rows[name]["cloud_run"]["usd_per_million_instance_based"]),
          f"{rows[name]['always_on']['pod_seconds']:,}", _money(rows[name]["always_on"]["usd_per_million"])]
         for name in ordered])
    totals_table = _table("totals", ["platform", "monthly cost", "$ per million requests", "cold starts",
                                     "requests that waited"], [
        [LABELS["knative"] + " (nodes)", _money(total["knative"]["monthly_usd_nodes"]),
         _money(total["knative"]["usd_per_million"]), str(total["knative"]["cold_starts"]),
         _percent(total["knative"]["waited_share"])],
        [LABELS["cloud_run_request"], _money(total["cloud_run"]["monthly_usd_request_based"]),
         _money(total["cloud_run"]["usd_per_million_request_based"]), str(total["cloud_run"]["cold_starts"]),
         _percent(total["cloud_run"]["waited_share"])],
        [LABELS["cloud_run_instance"], _money(total["cloud_run"]["monthly_usd_instance_based"]),
         _money(total["cloud_run"]["usd_per_million_instance_based"]), str(total["cloud_run"]["cold_starts"]),
         _percent(total["cloud_run"]["waited_share"])],
        [LABELS["always_on"] + " (nodes)", _money(total["always_on"]["monthly_usd_nodes"]),
         _money(total["always_on"]["usd_per_million"]), str(total["always_on"]["cold_starts"]),
         _percent(total["always_on"]["waited_share"])]])
    inputs = data["inputs"]
    input_rows = [[name, f"{values['service_time_ms']:.1f}", values["sources"].get("service_time", ""),
                   f"{values['cpu_ms_per_request']:.2f}", values["sources"].get("cpu_per_request", ""),
                   f"{values['process_start_ms']:.0f}", values["sources"].get("process_start", "")]
                  for name, values in inputs["endpoints"].items()]
    files = inputs["result_files"]
    found = ("Measured results used: " + ", ".join(f"{html.escape(key)} ({html.escape(str(value.get('path')))})"
                                                   for key, value in files.items())
             if isinstance(files, dict) else html.escape(files))
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in data["notes"] + data["trace"]["notes"])
    trace = data["trace"]
    simulated = sorted({point["requests_per_day"] for row in data["break_even"] for point in row["levels"]})
    levels = ", ".join(f"{level:,}" for level in simulated) or "no"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop traffic simulation: Knative, Cloud Run, always-on</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1500px; }}
table {{ border-collapse: collapse; font-size: 12px; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #f3f3f3; }}
.charts svg {{ margin: 4px 8px 4px 0; border: 1px solid #eee; }}
</style></head><body>
<h1>Traffic replayed through Knative's KPA, Cloud Run and the always-on design</h1>
<p><b>{html.escape(trace["name"])}</b>: {html.escape(trace["description"])} — {trace["requests"]:,} requests over
{trace["seconds"]:,} s, {len(simulation.endpoints)} endpoints. Monthly figures are this span × {data["months_per_span"]:.1f}.
{found}. The analytic per-request report is <a href="../cost.html">cost.html</a>; the Cloud Run numbers here replace
its 100-ms-per-request ones.</p>
<h2>Monthly cost and cold starts, whole shop</h2>
{monthly}
{totals_table}
<h2>Pods over time (the most in each minute), busiest endpoints</h2>
<p>Knative: pods ready or starting; Cloud Run: instances alive (busy or idle, until 15 idle minutes retire them);
always-on: replicas.</p>
<p>{legend} <span style="color:#999">■ requests per minute (own scale)</span></p>
<div class="charts">{charts}</div>
<h2>Share of requests that waited for a cold start</h2>
{cold}
<h2>Cost per million requests</h2>
{per_million}
<h2>Break-even: below which requests per day scale to zero is cheaper than always-on</h2>
<p>Each endpoint simulated for a day of the shop's diurnal shape at {levels} requests per day, Knative
against always-on (cluster cost allocated per endpoint: pod time at max(request, usage)). "none found": scale to
zero stays cheaper at every level simulated that the endpoint's max-scale can serve; "never cheaper": not even at
10 a day. The latency price is the share of requests that waited for a pod to start.</p>
{_table("break-even", BREAK_EVEN_HEADER, break_even_rows(data["break_even"]))}
<h2>Endpoints</h2>
{endpoint_table}
<h2>Inputs: measured or assumed</h2>
{_table("inputs", ["endpoint", "service ms", "source", "CPU ms/request", "source", "process start ms", "source"],
        input_rows)}
<p>Knative pod start {engine.PLATFORM_CONSTANTS["knative_pod_start_seconds"]} s and Cloud Run instance start
{engine.PLATFORM_CONSTANTS["cloud_run_instance_start_seconds"]} s before our process starts (assumed); Cloud Run
concurrency {simulation.cloud_run_concurrency}; nodes: {html.escape(costs.NODE.name)} (assumed).</p>
<ul>{notes}</ul>
</body></html>
"""
