"""The cost report's CPU per request, read from a function's own metrics, agrees with the kernel's accounting."""

from __future__ import annotations

import httpx

from bench import metrics
from bench.cost.report import measured
from bench.proc import tree_cpu_seconds
from local.processes import free_port, wait_for_port
from tests.support import function_alone

REQUESTS = 400


def test_cpu_seconds_per_request_match_proc_accounting_within_15_percent(shop_settings):
    metrics_port = free_port()
    scrape_url = {"catalog-list-products": f"http://127.0.0.1:{metrics_port}/metrics"}
    with function_alone("catalog-list-products", shop_settings, metrics_port) as running:
        with httpx.Client(base_url=running.url, timeout=10) as client:
            for _ in range(20):  # warm: first-use clients and indexes are not what a request costs
                client.get("/products", params={"limit": 5})
            wait_for_port(metrics_port)
            before, cpu_before = metrics.scrape(scrape_url), tree_cpu_seconds(running.process.pid)
            for _ in range(REQUESTS):
                assert client.get("/products", params={"limit": 5}).status_code == 200
            cpu_after, after = tree_cpu_seconds(running.process.pid), metrics.scrape(scrape_url)

    result = measured("catalog-list-products", before["catalog-list-products"], after["catalog-list-products"], 0)
    kernel_per_request = (cpu_after - cpu_before) / REQUESTS
    assert result.requests == REQUESTS
    assert abs(result.cpu_per_request - kernel_per_request) / kernel_per_request < 0.15, (
        result.cpu_per_request, kernel_per_request)
