"""What is deployed, read from the generated Knative manifests (knative/services/*.yaml), with Knative's defaults.

Every autoscaling annotation is read by its name when present, so the simulation follows the manifests as they are
regenerated; what a manifest leaves out takes config-autoscaler's default (pkg/autoscaler/config/config.go, and
`../shared/knative-autoscaler.md` for the values of knative-v1.23.0).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.sim import kpa

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "knative" / "services"
ANNOTATION = "autoscaling.knative.dev/"

# config-autoscaler defaults (knative-v1.23.0). Durations in seconds, percentages as fractions.
KNATIVE_DEFAULTS = {
    "container-concurrency-target-percentage": 0.70,
    "container-concurrency-target-default": 100.0,
    "requests-per-second-target-default": 200.0,
    "target-burst-capacity": 211.0,
    "max-scale-up-rate": 1000.0,
    "max-scale-down-rate": 2.0,
    "stable-window": 60.0,
    "panic-window-percentage": 0.10,
    "panic-threshold-percentage": 2.00,
    "scale-to-zero-grace-period": 30.0,
    "scale-to-zero-pod-retention-period": 0.0,
    "scale-down-delay": 0.0,
    "initial-scale": 1,
    "activation-scale": 1,
}
# config-deployment's queue-sidecar-cpu-request: every Knative pod also requests this much for queue-proxy.
QUEUE_PROXY_CPU_REQUEST = 0.025
# queue-proxy: at most containerConcurrency requests in the container, 10 x that queued, 503 past it.
QUEUE_DEPTH_PER_CONCURRENCY = 10
ACTIVATOR_QUEUE_DEPTH = 10_000  # the activator's breaker queue, per revision

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_QUANTITY_UNITS = {"m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
                   "Ti": 2**40}


def go_duration(text: str) -> float:
    """Seconds in a Go duration ("60s", "2m", "1m30s", "500ms"); a bare number is seconds."""
    text = str(text).strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def quantity(text) -> float:
    """A Kubernetes quantity as a plain number: "100m" -> 0.1, "128Mi" -> 134217728."""
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(text).strip())
    if not match or match.group(2) not in _QUANTITY_UNITS:
        raise ValueError(f"not a quantity: {text!r}")
    return float(match.group(1)) * _QUANTITY_UNITS[match.group(2)]


@dataclass(frozen=True)
class ServiceConfig:
    """One Knative Service as the simulation needs it."""

    name: str
    container_concurrency: int  # 0: unlimited
    metric: str  # "concurrency" or "rps"
    target: float  # per pod, what the KPA aims for
    total: float
    min_scale: int
    max_scale: int  # 0: unbounded
    stable_window: float
    panic_window: float
    panic_threshold: float
    scale_down_delay: float
    activation_scale: int
    scale_to_zero_grace: float
    pod_retention: float
    target_burst_capacity: float
    max_scale_up_rate: float
    max_scale_down_rate: float
    timeout_seconds: float
    cpu_request: float  # vCPU, the function container (queue-proxy's is added where pods are packed)
    cpu_limit: float
    memory_request_gib: float
    memory_limit_gib: float
    annotations: dict = field(default_factory=dict, compare=False)

    def decider_spec(self) -> kpa.DeciderSpec:
        return kpa.DeciderSpec(
            target_value=self.target, total_value=self.total, target_burst_capacity=self.target_burst_capacity,
            panic_threshold=self.panic_threshold, max_scale_up_rate=self.max_scale_up_rate,
            max_scale_down_rate=self.max_scale_down_rate, stable_window=self.stable_window,
            scale_down_delay=self.scale_down_delay, activation_scale=self.activation_scale)

    def bounded(self, desired: int) -> int:
        """pkg/reconciler/autoscaling/kpa/scaler.go applyBounds."""
        desired = max(desired, self.min_scale)
        return min(desired, self.max_scale) if self.max_scale else desired


def _annotation(annotations: dict, *names: str):
    for name in names:
        if ANNOTATION + name in annotations:
            return annotations[ANNOTATION + name]
    return None


def _percentage(value) -> float:
    number = float(value)
    return number / 100 if number > 1 else number  # config.go: values in (0, 1] are legacy fractions


def from_manifest(document: dict) -> ServiceConfig:
    template = document["spec"]["template"]
    annotations = {key: str(value) for key, value in (template.get("metadata", {}).get("annotations") or {}).items()}
    spec = template.get("spec", {})
    cc = int(spec.get("containerConcurrency", 0) or 0)
    metric = _annotation(annotations, "metric") or "concurrency"
    utilization = KNATIVE_DEFAULTS["container-concurrency-target-percentage"]
    if (value := _annotation(annotations, "target-utilization-percentage")) is not None:
        utilization = _percentage(value)
    annotated = _annotation(annotations, "target")
    if metric == "rps":
        total = float(annotated) if annotated is not None else KNATIVE_DEFAULTS["requests-per-second-target-default"]
        target = max(kpa.TARGET_MIN, total * utilization)
    else:
        target, total = kpa.target_and_total(cc, float(annotated) if annotated is not None else None, utilization,
                                             KNATIVE_DEFAULTS["container-concurrency-target-default"])
    stable_window = go_duration(_annotation(annotations, "window") or KNATIVE_DEFAULTS["stable-window"])
    panic_window_fraction = KNATIVE_DEFAULTS["panic-window-percentage"]
    if (value := _annotation(annotations, "panic-window-percentage")) is not None:
        panic_window_fraction = float(value) / 100
    panic_threshold = KNATIVE_DEFAULTS["panic-threshold-percentage"]
    if (value := _annotation(annotations, "panic-threshold-percentage")) is not None:
        panic_threshold = float(value) / 100
    containers = spec.get("containers") or [{}]
    requests, limits = {}, {}
    for container in containers:
        for key, value in ((container.get("resources") or {}).get("requests") or {}).items():
            requests[key] = requests.get(key, 0.0) + quantity(value)
        for key, value in ((container.get("resources") or {}).get("limits") or {}).items():
            limits[key] = limits.get(key, 0.0) + quantity(value)
    tbc = _annotation(annotations, "target-burst-capacity")
    return ServiceConfig(
        name=document["metadata"]["name"],
        container_concurrency=cc,
        metric=metric,
        target=target,
        total=total,
        min_scale=int(_annotation(annotations, "min-scale", "minScale") or 0),
        max_scale=int(_annotation(annotations, "max-scale", "maxScale") or 0),
        stable_window=stable_window,
        panic_window=max(1.0, math.ceil(round(stable_window * panic_window_fraction, 3))),
        panic_threshold=panic_threshold,
        scale_down_delay=go_duration(_annotation(annotations, "scale-down-delay") or 0),
        activation_scale=int(_annotation(annotations, "activation-scale") or KNATIVE_DEFAULTS["activation-scale"]),
        scale_to_zero_grace=KNATIVE_DEFAULTS["scale-to-zero-grace-period"],
        pod_retention=go_duration(_annotation(annotations, "scale-to-zero-pod-retention-period") or 0),
        target_burst_capacity=float(tbc) if tbc is not None else KNATIVE_DEFAULTS["target-burst-capacity"],
        max_scale_up_rate=KNATIVE_DEFAULTS["max-scale-up-rate"],
        max_scale_down_rate=KNATIVE_DEFAULTS["max-scale-down-rate"],
        timeout_seconds=float(spec.get("timeoutSeconds", 300)),
        cpu_request=requests.get("cpu", 0.0),
        cpu_limit=limits.get("cpu", 0.0) or requests.get("cpu", 0.0) or 1.0,
        memory_request_gib=requests.get("memory", 0.0) / 2**30,
        memory_limit_gib=(limits.get("memory", 0.0) or requests.get("memory", 0.0)) / 2**30,
        annotations=annotations,
    )


def load_services(directory: Path = SERVICES) -> dict[str, ServiceConfig]:
    """Every Knative Service in the folder's YAML files, by name."""
    services = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "Service" and "serving.knative.dev" in document.get("apiVersion", ""):
                config = from_manifest(document)
                services[config.name] = config
    return services


def default_service(name: str) -> ServiceConfig:
    """A Knative Service with nothing set: containerConcurrency 0, every autoscaling default."""
    return from_manifest({"metadata": {"name": name}, "spec": {"template": {"spec": {"containers": [{}]}}}})
