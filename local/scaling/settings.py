"""How each function scales locally: the route table's scaling, the windows and caps of SCALING_* settings.

The decision itself is bench/sim/kpa.py's (the model `make simulate` and `make replay` run), configured through the
same ServiceConfig the simulation reads from the manifests, so that both scale by one set of numbers.
"""

from __future__ import annotations

import dataclasses
import math

from pydantic import Field, model_validator

from bench.sim.config import ServiceConfig, default_service
from shared.routes import Route
from shared.settings import Settings


class ScalingSettings(Settings):
    """SCALING_* in the gateway's environment; Knative's defaults where Knative has one."""

    environment_prefix = "SCALING_"

    stable_window_seconds: float = Field(default=60.0, ge=1, le=3600)  # Knative allows 6 s - 1 h
    panic_window_percentage: float = Field(default=10.0, ge=1, le=100)
    panic_threshold_percentage: float = Field(default=200.0, ge=110, le=1000)
    scale_to_zero_grace_seconds: float = Field(default=30.0, ge=0, le=3600)
    # Caps for a 2-core machine: a replica is a ~60 MB process; past the caps requests queue.
    max_replicas: int = Field(default=4, ge=1, le=100)  # per function, below the route's max-scale
    # Idle replicas cost memory (~60 MB each), not CPU: room for a whole journey's functions within one stable
    # window (the 7 kept warm or ticked, and ~15 more), well short of oversubscribing 2 cores with busy ones.
    max_replicas_total: int = Field(default=24, ge=1, le=500)
    buffer: int = Field(default=1000, ge=0, le=100_000)  # requests held per function while no replica has room
    wait_seconds: float = Field(default=30.0, gt=0, le=600)  # how long a held request waits for a replica
    start_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    drain_seconds: float = Field(default=30.0, gt=0, le=600)  # a stopping replica's in-flight requests get this long
    # Overrides of every function's target and containerConcurrency, to watch scaling out at a laptop's rates.
    target: float | None = Field(default=None, ge=0.01)
    container_concurrency: int | None = Field(default=None, ge=0, le=1000)

    @model_validator(mode="after")
    def _target_within_limit(self) -> ScalingSettings:
        if self.target and self.container_concurrency and self.target > self.container_concurrency:
            raise ValueError("SCALING_TARGET may not exceed SCALING_CONTAINER_CONCURRENCY")
        return self


def service_config(route: Route, settings: ScalingSettings) -> ServiceConfig:
    """The route's Knative Service as the KPA sees it, with the local windows and caps."""
    concurrency = route.scaling.container_concurrency
    if settings.container_concurrency is not None:
        concurrency = settings.container_concurrency
    target = settings.target or (concurrency * 0.7 if settings.container_concurrency is not None
                                 else route.scaling.target)
    stable = settings.stable_window_seconds
    local_max = min(route.scaling.max_scale or settings.max_replicas, settings.max_replicas)
    return dataclasses.replace(
        default_service(route.name), container_concurrency=concurrency, target=float(target),
        total=float(concurrency or 100), min_scale=route.scaling.min_scale, max_scale=local_max,
        stable_window=stable, panic_window=max(1.0, math.ceil(round(stable * settings.panic_window_percentage / 100, 3))),
        panic_threshold=settings.panic_threshold_percentage / 100,
        scale_to_zero_grace=settings.scale_to_zero_grace_seconds)


def public_config(config: ServiceConfig) -> dict:
    """What /_local/scaling tells of a function's configuration (make replay builds the model from it)."""
    return {"target": config.target, "container_concurrency": config.container_concurrency,
            "min_scale": config.min_scale, "max_scale": config.max_scale, "stable_window": config.stable_window,
            "panic_window": config.panic_window, "panic_threshold": config.panic_threshold,
            "scale_to_zero_grace": config.scale_to_zero_grace}


def from_public(name: str, public: dict) -> ServiceConfig:
    """The ServiceConfig a function's /_local/scaling entry describes (the inverse of `public_config`)."""
    return dataclasses.replace(
        default_service(name), container_concurrency=int(public["container_concurrency"]),
        target=float(public["target"]), total=float(public["container_concurrency"] or 100),
        min_scale=int(public["min_scale"]), max_scale=int(public["max_scale"]),
        stable_window=float(public["stable_window"]), panic_window=float(public["panic_window"]),
        panic_threshold=float(public["panic_threshold"]), scale_to_zero_grace=float(public["scale_to_zero_grace"]))
