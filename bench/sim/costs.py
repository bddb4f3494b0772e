"""Money, from the simulated pods and instances. Prices come from bench/price_sheets (each with its source and date).

* Cluster (Knative and always-on): the nodes a cluster autoscaler would run, bin-packed from the pods' resource
  requests (every pod fills its requests' share of a node; the count is taken per hour at the hour's busiest
  second, since nodes come and go in minutes, not seconds), at the price sheet's vCPU-hour and GiB-hour. Per
  endpoint, the OpenCost-style allocation: its pod-seconds at max(request, usage) for CPU and max(request, RSS) for
  memory. A Knative pod also requests queue-proxy's CPU. The control plane, Knative's own components and
  DaemonSets are in neither figure.
* Cloud Run request-based: billable instance-seconds x (vCPU + GiB of the instance) + the per-request fee; the free
  tier is taken off once per account (bench.cost.model.request_based_bill).
* Cloud Run instance-based: instance lifetime x (vCPU + GiB), with its own free tier.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.cost import model
from bench.sim.config import QUEUE_PROXY_CPU_REQUEST, ServiceConfig

PRICE_SHEETS = Path(__file__).resolve().parents[1] / "price_sheets"
DAYS_PER_MONTH = model.DAYS_PER_MONTH


@dataclass(frozen=True)
class NodeShape:
    """A cluster node (assumed: GKE e2-standard-2; allocatable after GKE's kubelet and eviction reservations)."""

    name: str = "e2-standard-2"
    vcpu: float = 2.0
    gib: float = 8.0
    allocatable_vcpu: float = 1.93
    allocatable_gib: float = 6.1

    def hourly(self, sheet: dict) -> float:
        return self.vcpu * sheet["vcpu_hour"] + self.gib * sheet["gib_hour"]


NODE = NodeShape()


def price_sheets(directory: Path = PRICE_SHEETS) -> dict[str, dict]:
    """The cluster, request-based and instance-based sheets, by kind."""
    sheets = {}
    for path in sorted(directory.glob("*.json")):
        sheet = json.loads(path.read_text())
        if sheet.get("kind") in ("cluster", "request-based", "instance-based"):
            sheets.setdefault(sheet["kind"], sheet)
    missing = {"cluster", "request-based", "instance-based"} - set(sheets)
    if missing:
        raise SystemExit(f"no price sheet of kind {', '.join(sorted(missing))} in {directory}")
    return sheets


def pod_requests(config: ServiceConfig, knative: bool) -> tuple[float, float]:
    """(vCPU, GiB) one pod requests: the function's container, plus queue-proxy's CPU for a Knative pod."""
    return config.cpu_request + (QUEUE_PROXY_CPU_REQUEST if knative else 0.0), config.memory_request_gib


def pods_per_node(cpu: float, memory_gib: float, node: NodeShape = NODE) -> int:
    fits = [math.floor(node.allocatable_vcpu / cpu + 1e-9) if cpu > 0 else math.inf,
            math.floor(node.allocatable_gib / memory_gib + 1e-9) if memory_gib > 0 else math.inf]
    return max(1, min(fits)) if min(fits) < math.inf else 1_000_000


def allocated_cost(pods: np.ndarray, cpu_request: float, memory_gib: float, cpu_used: np.ndarray, rss_gib: float,
                   sheet: dict) -> float:
    """OpenCost-style: CPU at max(requested, used) each second, memory at max(requested, RSS) per pod."""
    cpu_seconds = float(np.maximum(pods * cpu_request, cpu_used).sum())
    gib_seconds = float(pods.sum()) * max(memory_gib, rss_gib)
    return (cpu_seconds * sheet["vcpu_hour"] + gib_seconds * sheet["gib_hour"]) / 3600


def node_hours(pods: dict[str, np.ndarray], shapes: dict[str, tuple[float, float]], seconds: int,
               node: NodeShape = NODE) -> np.ndarray:
    """Nodes in each hour: at the hour's busiest second, every endpoint's pods over how many fit on a node."""
    share = np.zeros(seconds)
    for name, count in pods.items():
        share += count / pods_per_node(*shapes[name], node)
    needed = np.ceil(share - 1e-9)
    hours = math.ceil(seconds / 3600) if seconds else 0
    padded = np.zeros(hours * 3600)
    padded[:seconds] = needed
    return padded.reshape(hours, 3600).max(axis=1) if hours else np.zeros(0)


def node_bill(hours: np.ndarray, seconds: int, sheet: dict, node: NodeShape = NODE) -> float:
    """The nodes' cost over the span (a last partial hour counts for its share)."""
    if not len(hours):
        return 0.0
    weights = np.ones(len(hours))
    weights[-1] = (seconds - 3600 * (len(hours) - 1)) / 3600
    return float((hours * weights).sum()) * node.hourly(sheet)


def usage_cost(usage: tuple[float, float, float], sheet: dict) -> float:
    """(vCPU-seconds, GiB-seconds, requests) at the sheet's prices, before any free tier."""
    vcpu, gib, requests = usage
    return vcpu * sheet["vcpu_second"] + gib * sheet["gib_second"] + requests * sheet["per_million_requests"] / 1e6


def monthly_bill(usages: list[tuple[float, float, float]], sheet: dict) -> float:
    """A month of usage for the whole account, free tier taken off once."""
    return model.request_based_bill(usages, sheet)


def per_million(cost: float, requests: float) -> float | None:
    return 1e6 * cost / requests if requests else None
