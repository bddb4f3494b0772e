"""`make cost-report`: CPU-seconds, latency and memory per endpoint function, measured, and what they cost.

    python -m bench.cost run [--users 20 --duration 30s]   # snapshot, load run, snapshot, report
    python -m bench.cost snapshot FILE                      # the functions' counters now
    python -m bench.cost report BEFORE AFTER                # report between two snapshots
    PROMETHEUS_URL=… python -m bench.cost window 1h [--end UNIX_TIME]   # report a window of any traffic

Counters come from each function's metrics port (the `make up` layout). With PROMETHEUS_URL they come from that
Prometheus instead, over every series scraped in the load run's window (bench/cost/prometheus.py: pods that
scaled to zero meanwhile are counted too), and `run` loads BASE_URL when it is set (a cluster's gateway) instead
of the local shop.
Outputs: a terminal table and bench/results/cost.{csv,json,html}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from bench import metrics
from bench.cost import model, report
from bench.cost.prometheus import Prometheus, seconds
import httpx

from local.config import GATEWAY_PORT
from local.deploy.knative import RESOURCES
from local.run import default_ports
from shared.routes import ROUTES

HERE = Path(__file__).resolve().parent.parent
PRICE_SHEETS = HERE / "price_sheets"
RESULTS = HERE / "results"


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _gib(quantity: str) -> float:
    units = {"Mi": 2**20, "Gi": 2**30}
    return float(quantity[:-2]) * units[quantity[-2:]] / 2**30


def knobs() -> dict[str, model.Knobs]:
    return {route.name: model.Knobs(
        target=route.scaling.target, container_concurrency=route.scaling.container_concurrency,
        min_scale=route.scaling.min_scale, cpu_request=_cpu(RESOURCES["requests"]["cpu"]),
        cpu_limit=_cpu(RESOURCES["limits"]["cpu"]), memory_request_gib=_gib(RESOURCES["requests"]["memory"]),
        memory_limit_gib=_gib(RESOURCES["limits"]["memory"])) for route in ROUTES}


def metrics_urls() -> dict[str, str]:
    return {name: f"http://127.0.0.1:{ports[1]}/metrics" for name, ports in default_ports().items()}


def snapshot() -> dict[str, metrics.FunctionSample]:
    """Each function's counters; under `make up SCALING=knative` each replica's, as `function@pid`."""
    return metrics.scrape(replica_metrics_urls() or metrics_urls())


def replica_metrics_urls() -> dict[str, str] | None:
    """The replicas the scaling gateway runs now (None when the gateway does not scale functions)."""
    try:
        response = httpx.get(f"http://127.0.0.1:{GATEWAY_PORT}/_local/scaling", timeout=5)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return {f"{name}@{replica['pid']}": f"http://127.0.0.1:{replica['metrics_port']}/metrics"
            for name, function in response.json()["functions"].items() for replica in function["replicas"]}


def per_function(before: dict, after: dict, peaks: dict) -> tuple[dict, dict, dict]:
    """Replicas' samples (`function@pid`) as one per function: what each replica gained since `before` (all of it
    for a replica started since), summed. A replica that stopped in between is not counted: keep the load shorter
    than the stable window."""
    if not any("@" in key for key in after):
        return before, after, peaks
    summed: dict[str, metrics.FunctionSample] = {}
    for key, sample in after.items():
        gained = report.measured_sample(before.get(key), sample)
        total = summed.setdefault(key.split("@")[0], metrics.FunctionSample())
        total.requests += gained.requests
        total.errors += gained.errors
        total.client_errors += gained.client_errors
        total.latency_sum += gained.latency_sum
        total.cpu_seconds += gained.cpu_seconds
        total.rss_bytes = max(total.rss_bytes, gained.rss_bytes)
        for le, count in gained.latency_buckets.items():
            total.latency_buckets[le] = total.latency_buckets.get(le, 0.0) + count
    by_function: dict[str, float] = {}
    for key, peak in peaks.items():
        by_function[key.split("@")[0]] = max(by_function.get(key.split("@")[0], 0.0), peak)
    return {}, summed, by_function


class PeakMemory:
    """Samples every function's RSS once a second while a load runs: the metrics only hold the current value."""

    def __init__(self):
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while not self._stop.wait(1.0):
            for name, sample in snapshot().items():
                self.peaks[name] = max(self.peaks.get(name, 0.0), sample.rss_bytes)


def write(result: report.Report, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cost.csv").write_text(report.to_csv(result.rows))
    (out / "cost-levels.csv").write_text(report.to_csv(result.levels))
    (out / "cost.json").write_text(report.to_json(result))
    (out / "cost.html").write_text(report.to_html(result))
    print(f"measured from {result.source}\n")
    print(report.to_table(result))
    print(f"\nwritten: {out / 'cost.csv'}, {out / 'cost-levels.csv'}, {out / 'cost.json'}, {out / 'cost.html'}")


def build(before, after, peaks, profile_path: Path, source: str) -> report.Report:
    sheets = [json.loads(path.read_text()) for path in sorted(PRICE_SHEETS.glob("*.json"))
              if json.loads(path.read_text()).get("kind") in ("cluster", "request-based")]
    profile = json.loads(profile_path.read_text())
    before, after, peaks = per_function(before, after, peaks)
    results = [report.measured(name, before.get(name), sample, peaks.get(name, 0.0)) for name, sample in after.items()]
    results = [result for result in results if result.requests > 0]
    if not results:
        raise SystemExit("no function served a request in the measured window")
    return report.build(results, knobs(), sheets, profile, source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=Path, default=PRICE_SHEETS / "traffic-small-shop.json")
    parser.add_argument("--out", type=Path, default=RESULTS)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="snapshot, load run, snapshot, report")
    run.add_argument("--users", type=int, default=int(os.environ.get("USERS", "20")))
    run.add_argument("--spawn-rate", type=float, default=float(os.environ.get("SPAWN_RATE", "5")))
    run.add_argument("--duration", default=os.environ.get("DURATION", "30s"))
    take = commands.add_parser("snapshot", help="save the functions' counters")
    take.add_argument("file", type=Path)
    between = commands.add_parser("report", help="report between two snapshots")
    between.add_argument("before", type=Path)
    between.add_argument("after", type=Path)
    window = commands.add_parser("window", help="report a window of traffic from PROMETHEUS_URL")
    window.add_argument("duration", type=seconds, help="how far back: 90s, 30m, 2h")
    window.add_argument("--end", type=float, default=None, help="the window's end, a Unix time (default: now)")
    options = parser.parse_args()

    prometheus = os.environ.get("PROMETHEUS_URL")
    if options.command in ("snapshot", "report") and prometheus:
        raise SystemExit("with PROMETHEUS_URL use `python -m bench.cost window DURATION`: snapshots of a cluster lose "
                         "the pods that scaled to zero in between")
    if options.command == "snapshot":
        metrics.save(options.file, snapshot())
    elif options.command == "report":
        write(build(metrics.load(options.before), metrics.load(options.after), {}, options.profile,
                    "the functions' metrics ports"), options.out)
    elif options.command == "window":
        if not prometheus:
            raise SystemExit("`window` reads PROMETHEUS_URL: set it to the Prometheus that scrapes the functions")
        write(from_prometheus(prometheus, options.duration, options.end or time.time(), options.profile),
              options.out)
    elif prometheus:
        from bench.load import load, running_shop

        with nullcontext() if os.environ.get("BASE_URL") else running_shop(), Prometheus(prometheus) as server:
            started = time.time()
            server.wait_for_scrapes_after(started)  # every function's first sample in the window precedes the load
            load(options.users, options.spawn_rate, options.duration, os.environ.get("BASE_URL"))
            end = server.wait_for_scrapes_after(time.time())  # and its last one follows it
        write(from_prometheus(prometheus, end - started, end, options.profile), options.out)
    else:
        from bench.load import load, running_shop

        with running_shop():
            before = snapshot()
            started = time.time()
            with PeakMemory() as memory:
                load(options.users, options.spawn_rate, options.duration)
            after = snapshot()
            source = f"the functions' metrics ports, load run of {time.time() - started:.0f} s"
            write(build(before, after, memory.peaks, options.profile, source), options.out)


def from_prometheus(url: str, window_seconds: float, end: float, profile: Path) -> report.Report:
    """The report of what every function did in the window, over all its series in Prometheus."""
    with Prometheus(url) as server:
        gained = server.window(window_seconds, end)
    ended = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(end))
    source = f"Prometheus at {url}, every series over the {math.ceil(window_seconds)} s up to {ended}"
    routes = {route.name for route in ROUTES}
    return build({}, {name: sample for name, sample in gained.items() if name in routes}, {}, profile, source)


if __name__ == "__main__":
    main()
