"""Snapshots of the functions' own Prometheus metrics, scraped from their metrics ports (the cost report reads a
cluster's Prometheus through bench/cost/prometheus.py)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass
class FunctionSample:
    """One function's counters at one moment (cumulative since its process started)."""

    requests: float = 0.0
    errors: float = 0.0  # 5xx
    client_errors: float = 0.0  # 4xx
    latency_sum: float = 0.0
    latency_buckets: dict[str, float] = field(default_factory=dict)  # le -> cumulative count
    cpu_seconds: float = 0.0
    rss_bytes: float = 0.0
    start_time: float = 0.0


def parse(text: str) -> FunctionSample:
    sample = FunctionSample()
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            name, labels, value = metric.name, metric.labels, metric.value
            if name == "shop_http_requests_total":
                sample.requests += value
                status = labels.get("status", "")
                if status.startswith("5"):
                    sample.errors += value
                elif status.startswith("4"):
                    sample.client_errors += value
            elif name == "shop_http_request_duration_seconds_bucket":
                sample.latency_buckets[labels["le"]] = sample.latency_buckets.get(labels["le"], 0.0) + value
            elif name == "shop_http_request_duration_seconds_sum":
                sample.latency_sum += value
            elif name == "process_cpu_seconds_total":
                sample.cpu_seconds = value
            elif name == "process_resident_memory_bytes":
                sample.rss_bytes = value
            elif name == "process_start_time_seconds":
                sample.start_time = value
    return sample


def scrape(metrics_urls: dict[str, str], timeout: float = 5.0) -> dict[str, FunctionSample]:
    """Every reachable function's sample; a function that does not answer is left out."""
    samples = {}
    with httpx.Client(timeout=timeout) as client:
        for name, url in metrics_urls.items():
            try:
                samples[name] = parse(client.get(url).text)
            except httpx.HTTPError:
                continue
    return samples


def save(path, samples: dict[str, FunctionSample]) -> None:
    with open(path, "w") as handle:
        json.dump({"taken_at": time.time(), "functions": {name: asdict(s) for name, s in samples.items()}}, handle)


def load(path) -> dict[str, FunctionSample]:
    with open(path) as handle:
        return {name: FunctionSample(**values) for name, values in json.load(handle)["functions"].items()}
