"""The cost report's rows, and their forms: terminal table, CSV, JSON and a self-contained HTML page."""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass

from bench.cost import model
from bench.metrics import FunctionSample

TRAFFIC_LEVELS = (0.01, 0.1, 1, 10, 100)  # multiples of the traffic profile


def measured_sample(before: FunctionSample | None, after: FunctionSample) -> FunctionSample:
    """What one process gained between two samples (a restarted process counts from zero), as a sample."""
    if before is None or (after.start_time and before.start_time and after.start_time != before.start_time):
        return after
    return FunctionSample(
        requests=after.requests - before.requests, errors=after.errors - before.errors,
        client_errors=after.client_errors - before.client_errors, latency_sum=after.latency_sum - before.latency_sum,
        latency_buckets={le: count - before.latency_buckets.get(le, 0.0) for le, count in after.latency_buckets.items()},
        cpu_seconds=max(0.0, after.cpu_seconds - before.cpu_seconds), rss_bytes=after.rss_bytes)


def measured(name: str, before: FunctionSample | None, after: FunctionSample, peak_rss: float) -> model.Measured:
    """What one function did between two samples (a restarted process counts from zero)."""
    gained = measured_sample(before, after)
    requests, buckets = gained.requests, gained.latency_buckets
    return model.Measured(
        function=name, requests=int(round(requests)), errors=int(round(gained.errors)),
        client_errors=int(round(gained.client_errors)), cpu_seconds=gained.cpu_seconds,
        latency_mean=gained.latency_sum / requests if requests else 0.0,
        p50=model.quantile(0.5, buckets), p95=model.quantile(0.95, buckets), p99=model.quantile(0.99, buckets),
        peak_rss_bytes=max(peak_rss, after.rss_bytes))


@dataclass
class Report:
    rows: list[dict]  # one per endpoint, values already formatted: the CSV and the HTML show the same strings
    levels: list[dict]  # monthly cost over traffic levels
    sheets: list[dict]
    profile: dict
    source: str


def build(results: list[model.Measured], knobs: dict[str, model.Knobs], sheets: list[dict], profile: dict,
          source: str) -> Report:
    cluster = next(sheet for sheet in sheets if sheet["kind"] == "cluster")
    request_based = next(sheet for sheet in sheets if sheet["kind"] == "request-based")
    shares = profile["hourly_share"]
    rows = []
    for result in sorted(results, key=lambda r: r.function):
        settings = knobs[result.function]
        per_day = profile["requests_per_day"].get(result.function, 0)
        row = {
            "function": result.function,
            "requests": str(result.requests),
            "error_rate_pct": f"{100 * result.error_rate:.2f}",
            "client_error_rate_pct": f"{100 * result.client_errors / result.requests:.2f}" if result.requests else "0.00",
            "p50_ms": f"{1000 * result.p50:.1f}",
            "p95_ms": f"{1000 * result.p95:.1f}",
            "p99_ms": f"{1000 * result.p99:.1f}",
            "cpu_ms_per_request": f"{1000 * result.cpu_per_request:.3f}",
            "peak_rss_mib": f"{result.peak_rss_bytes / 2**20:.1f}",
            "instance_ms_per_request": f"{1000 * model.instance_seconds_per_request(result, settings):.3f}",
        }
        for sheet in sheets:
            row[f"usd_per_million_{sheet['name']}"] = f"{1e6 * model.cost_per_request(result, settings, sheet):.4f}"
        row["requests_per_day"] = str(per_day)
        row["monthly_usd_scale_to_zero"] = f"{model.monthly_cluster_cost(result, settings, cluster, per_day, shares, False):.2f}"
        row["monthly_usd_always_on"] = f"{model.monthly_cluster_cost(result, settings, cluster, per_day, shares, True):.2f}"
        rows.append(row)
    levels = []
    for level in TRAFFIC_LEVELS:
        scale_to_zero = always_on = 0.0
        usage = []
        for result in results:
            per_day = profile["requests_per_day"].get(result.function, 0) * level
            settings = knobs[result.function]
            scale_to_zero += model.monthly_cluster_cost(result, settings, cluster, per_day, shares, False)
            always_on += model.monthly_cluster_cost(result, settings, cluster, per_day, shares, True)
            usage.append(model.monthly_request_based_usage(result, settings, request_based, per_day, shares))
        total = sum(profile["requests_per_day"].get(result.function, 0) for result in results) * level
        levels.append({"traffic_multiple": f"{level:g}", "requests_per_day": f"{total:.0f}",
                       "monthly_usd_scale_to_zero": f"{scale_to_zero:.2f}",
                       "monthly_usd_always_on": f"{always_on:.2f}",
                       f"monthly_usd_{request_based['name']}": f"{model.request_based_bill(usage, request_based):.2f}"})
    return Report(rows, levels, sheets, profile, source)


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_json(report: Report) -> str:
    return json.dumps({"source": report.source, "endpoints": report.rows, "traffic_levels": report.levels,
                       "price_sheets": report.sheets, "traffic_profile": report.profile["name"]}, indent=2)


def to_table(report: Report) -> str:
    columns = ["function", "requests", "error_rate_pct", "p50_ms", "p95_ms", "p99_ms", "cpu_ms_per_request",
               "peak_rss_mib", *[f"usd_per_million_{sheet['name']}" for sheet in report.sheets],
               "monthly_usd_scale_to_zero", "monthly_usd_always_on"]
    return _aligned(columns, report.rows) + "\n\n" + _aligned(list(report.levels[0]), report.levels)


def _aligned(columns: list[str], rows: list[dict]) -> str:
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) if i == 0 else c.rjust(widths[c]) for i, c in enumerate(columns))]
    lines += ["  ".join(row[c].ljust(widths[c]) if i == 0 else row[c].rjust(widths[c]) for i, c in enumerate(columns))
              for row in rows]
    return "\n".join(lines)


def _table(table_id: str, rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(value)}</td>" for value in row.values()) + "</tr>"
                   for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _bar_chart(rows: list[dict], sheets: list[dict]) -> str:
    """Cost per million requests per endpoint, one bar per price sheet (inline SVG, log-free linear scale)."""
    colours = ["#3366cc", "#dc7633", "#2e8b57"]
    keys = [f"usd_per_million_{sheet['name']}" for sheet in sheets]
    top = max([float(row[key]) for row in rows for key in keys] + [1e-9])
    bar, gap, left, width = 9, 8, 210, 520
    height = len(rows) * (len(keys) * bar + gap) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" height="{height}" role="img" '
             'aria-label="cost per million requests per endpoint">']
    y = 10
    for row in rows:
        parts.append(f'<text x="{left - 6}" y="{y + bar * len(keys) / 2 + 4}" text-anchor="end" font-size="11">'
                     f'{html.escape(row["function"])}</text>')
        for index, key in enumerate(keys):
            length = width * float(row[key]) / top
            parts.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar - 1}" fill="{colours[index]}"/>'
                         f'<text x="{left + length + 4:.1f}" y="{y + bar - 1}" font-size="9">${row[key]}</text>')
            y += bar
        y += gap
    for index, sheet in enumerate(sheets):
        parts.append(f'<rect x="{left + 160 * index}" y="{y + 6}" width="10" height="10" fill="{colours[index]}"/>'
                     f'<text x="{left + 160 * index + 14}" y="{y + 15}" font-size="11">{html.escape(sheet["name"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _line_chart(levels: list[dict]) -> str:
    """Monthly cost against traffic level (log-log), one line per deployment style."""
    import math

    series = [key for key in levels[0] if key.startswith("monthly_usd_")]
    colours = ["#2e8b57", "#c0392b", "#3366cc"]
    xs = [math.log10(max(float(level["requests_per_day"]), 1)) for level in levels]
    values = [float(level[key]) for level in levels for key in series]
    low, high = math.log10(max(min(v for v in values if v > 0) if any(values) else 1, 0.01)), math.log10(max(values + [1]))
    width, height, pad = 620, 300, 60

    def point(x, value):
        px = pad + (x - xs[0]) / ((xs[-1] - xs[0]) or 1) * (width - 2 * pad)
        py = height - pad - (math.log10(max(value, 10 ** low)) - low) / ((high - low) or 1) * (height - 2 * pad)
        return f"{px:.1f},{py:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 200}" height="{height}" role="img" '
             'aria-label="monthly cost over traffic levels">',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>']
    for x, level in zip(xs, levels):
        parts.append(f'<text x="{point(x, 10 ** low).split(",")[0]}" y="{height - pad + 16}" font-size="10" '
                     f'text-anchor="middle">{int(float(level["requests_per_day"])):,}/day</text>')
    for index, key in enumerate(series):
        points = " ".join(point(x, float(level[key])) for x, level in zip(xs, levels))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colours[index % 3]}" stroke-width="2"/>')
        for x, level in zip(xs, levels):
            px, py = point(x, float(level[key])).split(",")
            parts.append(f'<circle cx="{px}" cy="{py}" r="3" fill="{colours[index % 3]}"/>'
                         f'<text x="{float(px) + 4}" y="{float(py) - 4}" font-size="9">${level[key]}</text>')
        parts.append(f'<text x="{width + 20}" y="{pad + 16 * index}" font-size="11" fill="{colours[index % 3]}">'
                     f'{html.escape(key.removeprefix("monthly_usd_"))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: Report) -> str:
    sheets = "".join(f"<li><b>{html.escape(s['name'])}</b> ({html.escape(s['date'])}): {html.escape(s['description'])} "
                     f"Source: {html.escape(s['source'])}</li>" for s in report.sheets)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop cost per request</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; font-size: 12px; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #f3f3f3; }}
</style></head><body>
<h1>Cost per request, per endpoint function</h1>
<p>Measured from each function's own Prometheus metrics ({html.escape(report.source)}). Traffic profile:
<b>{html.escape(report.profile["name"])}</b> — {html.escape(report.profile["description"])}</p>
<h2>Cost per million requests</h2>
{_bar_chart(report.rows, report.sheets)}
<h2>Monthly cost: scale to zero versus always on</h2>
{_line_chart(report.levels)}
{_table("levels", report.levels)}
<h2>Endpoints</h2>
{_table("endpoints", report.rows)}
<h2>Price sheets</h2><ul>{sheets}</ul>
<p>Model: see bench/cost/model.py and the README's "Cost per request" section.</p>
</body></html>
"""
