"""`make cost-report PROMETHEUS_URL=…` against a real Prometheus scraping the session's functions: the counters
are read over every series of the window, so a replica that served requests and is gone by the time of the
report (a pod scaled to zero) still counts."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from bench.cost.prometheus import Prometheus
from local.processes import ROOT, free_port, spawn, stop, wait_for_port
from tests.e2e.debian_tools import debian_binary
from tests.support import function_alone

SCRAPE_SECONDS = 1.0


def test_the_cost_report_counts_the_window_from_prometheus_including_a_replica_gone_since(
        shop, shop_settings, gateway, tmp_path):
    extra_metrics_port = free_port()  # a second replica of catalog-list-products, as under load in a cluster
    targets = [(name, f"{name}-0", ports[1]) for name, ports in shop.function_ports.items()]
    targets.append(("catalog-list-products", "catalog-list-products-1", extra_metrics_port))
    with function_alone("catalog-list-products", shop_settings, metrics_port=extra_metrics_port) as extra, \
            running_prometheus(targets, tmp_path) as url, Prometheus(url) as server:
        # A series counts from its first scrape: these counters exist before the window opens.
        assert httpx.get(f"{extra.url}/products", params={"limit": 1}).status_code == 200
        assert gateway.get("/products", params={"limit": 1}).status_code == 200
        assert gateway.get("/search", params={"q": "warm"}).status_code == 200
        time.sleep(2 * SCRAPE_SECONDS)  # scraped before the window opens (its start is rounded down to a second)
        started = time.time()
        time.sleep(5 * SCRAPE_SECONDS)  # the window's first scrapes come before its first request

        for _ in range(30):
            assert gateway.get("/products", params={"limit": 1}).status_code == 200
        for _ in range(20):
            assert httpx.get(f"{extra.url}/products", params={"limit": 1}).status_code == 200
        for _ in range(10):
            assert gateway.get("/search", params={"q": "mug"}).status_code == 200
        server.wait_for_scrapes_after(time.time(), timeout=10)
        stop([extra.process])  # the replica scales to zero: its series end before the report is made
        end = server.wait_for_scrapes_after(time.time(), timeout=10) + SCRAPE_SECONDS
        time.sleep(max(0.0, end - time.time()))
        window = math.ceil(end - started)
        report = subprocess.run(
            [sys.executable, "-m", "bench.cost", "--out", str(tmp_path / "out"), "window", f"{window}s",
             "--end", f"{end:.3f}"], cwd=ROOT, env={**os.environ, "PROMETHEUS_URL": url},
            capture_output=True, text=True, timeout=60)

    assert report.returncode == 0, report.stdout + report.stderr
    rows = {row["function"]: row for row in csv.DictReader((tmp_path / "out" / "cost.csv").open())}
    assert set(rows) == {"catalog-list-products", "catalog-search-products"}
    assert rows["catalog-list-products"]["requests"] == "50"  # 30 + the 20 of the replica gone since
    assert rows["catalog-search-products"]["requests"] == "10"
    assert float(rows["catalog-list-products"]["cpu_ms_per_request"]) > 0
    assert float(rows["catalog-list-products"]["peak_rss_mib"]) > 10
    assert f"every series over the {window} s" in json.loads((tmp_path / "out" / "cost.json").read_text())["source"]


@contextmanager
def running_prometheus(targets: list[tuple[str, str, int]], tmp_path: Path):
    """A real Prometheus (Debian's package) on a free port scraping each (function, pod, metrics port) every
    second, labelled as knative/observability/prometheus-scrape.yml labels a cluster's pods; stopped afterwards."""
    binary = debian_binary("prometheus", "prometheus")
    config = {"global": {"scrape_interval": f"{SCRAPE_SECONDS:g}s", "scrape_timeout": f"{SCRAPE_SECONDS:g}s"},
              "scrape_configs": [{"job_name": "shop-functions", "honor_labels": True, "static_configs": [
                  {"targets": [f"127.0.0.1:{port}"], "labels": {"function": function, "pod": pod}}
                  for function, pod, port in targets]}]}
    config_file, log = tmp_path / "prometheus.yml", tmp_path / "prometheus.log"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    with open(log, "ab") as log_file:
        process = spawn([binary, f"--config.file={config_file}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                         f"--web.listen-address=127.0.0.1:{port}"], log_file=log_file)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, process)
        _wait_until_every_target_is_scraped(url, len(targets), log)
        yield url
    finally:
        stop([process])


def _wait_until_every_target_is_scraped(url: str, count: int, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            targets = httpx.get(f"{url}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
        except (httpx.HTTPError, ValueError, KeyError):
            targets = []
        if len(targets) == count and all(target["health"] == "up" for target in targets):
            return
        time.sleep(0.2)
    raise AssertionError(f"Prometheus did not scrape the {count} targets within {timeout:.0f} s: "
                         f"{log.read_text()[-2000:]}")
