"""The cost report's counters read from a Prometheus that scrapes the functions (knative/observability/
prometheus-scrape.yml labels every series with its `function`).

In a cluster a function that scales to zero takes its counters with it: its pods' series end, so two instant
snapshots (sums over the pods alive at each moment) lose whatever the vanished pods served. Instead every counter
is read once, over all the series scraped in the window, ended ones included, and summed per `function`: per
series, what it gained between its first and its last sample in the window (max_over_time - min_over_time of a
counter), or `increase()` for a series whose counter reset (a container restarted within its pod). The peak RSS is
max_over_time over the window.

Why not `increase()` for every series: it extrapolates each series from its samples to the window's edges, and
over a load run of a few scrape intervals that reads counts 10-30 % high (56-58 for 50 requests in a 7 s window
scraped every second). First to last sample is exact for what was scraped, and `run` makes every function be
scraped after the window opens and again after the load ends.
What no scrape saw is not counted: a pod started during the window counts from its first scrape (its requests
before it, and its start-up CPU, are left out alike, so per-request figures stay consistent).
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime

import httpx

from bench.metrics import FunctionSample

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}


def seconds(duration: str) -> float:
    """'90', '90s', '5m', '1h' -> seconds."""
    found = _DURATION.match(duration.strip())
    if not found:
        raise ValueError(f"not a duration: {duration!r} (use 90s, 5m, 1h)")
    return float(found.group(1)) * _UNITS[found.group(2)]


def gained_per_series(selector: str, window: str) -> str:
    """PromQL: what each counter series gained over its samples in the window (last - first, no extrapolation),
    or increase() for a series that reset."""
    series = f"{selector}[{window}]"
    return (f"((max_over_time({series}) - min_over_time({series})) unless (resets({series}) > 0)) "
            f"or increase({series})")


class Prometheus:
    def __init__(self, base_url: str, timeout: float = 30.0):
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *_) -> None:
        self.client.close()

    def query(self, expression: str, at: float) -> list[tuple[dict, float]]:
        response = self.client.get("/api/v1/query", params={"query": expression, "time": f"{at:.3f}"})
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {expression!r}: {body.get('error', response.text[:200])}")
        return [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]

    def window(self, window_seconds: float, end: float) -> dict[str, FunctionSample]:
        """What each function did in the `window_seconds` before `end`: what its counters gained, its peak RSS."""
        window = f"{math.ceil(window_seconds)}s"

        def by_function(expression: str) -> dict[str, float]:
            return {labels.get("function", ""): value for labels, value in self.query(expression, end)}

        def gained(selector: str, by: str = "function") -> str:
            return f"sum by ({by}) ({gained_per_series(selector, window)})"

        requests = by_function(gained("shop_http_requests_total"))
        errors = by_function(gained('shop_http_requests_total{status=~"5.."}'))
        client_errors = by_function(gained('shop_http_requests_total{status=~"4.."}'))
        latency = by_function(gained("shop_http_request_duration_seconds_sum"))
        cpu = by_function(gained("process_cpu_seconds_total"))
        rss = by_function(f"max by (function) (max_over_time(process_resident_memory_bytes[{window}]))")
        buckets: dict[str, dict[str, float]] = {}
        for labels, value in self.query(gained("shop_http_request_duration_seconds_bucket", "function, le"), end):
            buckets.setdefault(labels.get("function", ""), {})[labels["le"]] = value
        return {name: FunctionSample(requests=count, errors=errors.get(name, 0.0),
                                     client_errors=client_errors.get(name, 0.0), latency_sum=latency.get(name, 0.0),
                                     latency_buckets=buckets.get(name, {}), cpu_seconds=cpu.get(name, 0.0),
                                     rss_bytes=rss.get(name, 0.0))
                for name, count in requests.items() if name}

    def wait_for_scrapes_after(self, moment: float, timeout: float = 120.0) -> float:
        """Wait until every function target has been scraped after `moment` (so the window holds the last
        requests), at most `timeout` seconds; the time to evaluate the window at."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            targets = self.client.get("/api/v1/targets", params={"state": "active"}).json()["data"]["activeTargets"]
            scraped = [_timestamp(target["lastScrape"]) for target in targets
                       if "function" in target["labels"] and target["health"] == "up"]
            if all(at > moment for at in scraped):
                break
            time.sleep(1.0)
        return time.time()


def _timestamp(rfc3339: str) -> float:
    # Prometheus answers nanoseconds (2026-01-01T10:00:00.123456789Z); datetime takes microseconds.
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", rfc3339.replace("Z", "+00:00"))
    return datetime.fromisoformat(trimmed).timestamp()
