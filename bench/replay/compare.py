"""Predicted against observed, per function: replica-seconds, cold starts and the time to scale to zero."""

from __future__ import annotations

import numpy as np

from bench.sim import knative
from bench.sim.inputs import EndpointInputs
from local.scaling.settings import from_public

REPLICA_SECONDS_TOLERANCE = 0.20
COLD_STARTS_TOLERANCE = 0.20
ZERO_TOLERANCE_SECONDS = 5.0


def scale_to_zero_seconds(arrivals: np.ndarray, pods: np.ndarray) -> float | None:
    """Seconds from the last second with a request to the first later second that ends with no replica."""
    busy = np.flatnonzero(arrivals)
    if not len(busy):
        return None
    last = int(busy[-1])
    zero = np.flatnonzero(pods[last + 1:] == 0)
    return float(zero[0] + 1) if len(zero) else None


def predict(name: str, arrivals: np.ndarray, public: dict, service_time: float,
            process_start: float) -> knative.KnativeRun:
    """The simulation of bench/sim over the same arrivals, with this machine's measured times and no Knative pod
    overhead (a local replica is only our process)."""
    inputs = EndpointInputs(service_time=service_time, cpu_per_request=0.0, rss_gib=0.0, process_start=process_start,
                            sources={"service_time": "measured in this replay", "process_start": "measured in this replay"})
    return knative.simulate(arrivals, from_public(name, public), inputs, warm_start=False, pod_start=0.0)


def _within(predicted: float, observed: float, tolerance: float) -> bool:
    if observed == 0:
        return predicted == 0
    return abs(predicted - observed) / observed <= tolerance


def row(name: str, arrivals: np.ndarray, observed_pods: np.ndarray, observed_cold_starts: int,
        run: knative.KnativeRun) -> dict:
    predicted_zero = scale_to_zero_seconds(arrivals, run.pods)
    observed_zero = scale_to_zero_seconds(arrivals, observed_pods)
    zero_ok = (predicted_zero is not None and observed_zero is not None
               and abs(predicted_zero - observed_zero) <= ZERO_TOLERANCE_SECONDS)
    predicted_seconds, observed_seconds = float(run.pods.sum()), float(observed_pods.sum())
    predicted_cold = int(run.cold_starts.sum())
    return {
        "function": name, "requests": int(arrivals.sum()),
        "replica_seconds": {"predicted": predicted_seconds, "observed": observed_seconds,
                            "agree": _within(predicted_seconds, observed_seconds, REPLICA_SECONDS_TOLERANCE)},
        "cold_starts": {"predicted": predicted_cold, "observed": observed_cold_starts,
                        "agree": _within(predicted_cold, observed_cold_starts, COLD_STARTS_TOLERANCE)},
        "peak_replicas": {"predicted": int(run.pods.max(initial=0)), "observed": int(observed_pods.max(initial=0))},
        "scale_to_zero_seconds": {"predicted": predicted_zero, "observed": observed_zero, "agree": zero_ok},
    }


def table(rows: list[dict]) -> str:
    lines = [f"{'function':26} {'requests':>8} {'replica-s pred/obs':>20} {'cold starts pred/obs':>21} "
             f"{'peak pred/obs':>14} {'to zero s pred/obs':>19}  agree"]
    for r in rows:
        seconds, cold, peak, zero = r["replica_seconds"], r["cold_starts"], r["peak_replicas"], r["scale_to_zero_seconds"]
        agree = all(r[key]["agree"] for key in ("replica_seconds", "cold_starts", "scale_to_zero_seconds"))
        zeros = "/".join("never" if value is None else f"{value:.0f}" for value in (zero["predicted"], zero["observed"]))
        lines.append(f"{r['function']:26} {r['requests']:>8} {seconds['predicted']:>9.0f}/{seconds['observed']:<10.0f} "
                     f"{cold['predicted']:>10}/{cold['observed']:<10} {peak['predicted']:>6}/{peak['observed']:<7} "
                     f"{zeros:>19}  {'yes' if agree else 'NO: ' + _misses(r)}")
    return "\n".join(lines)


def _misses(r: dict) -> str:
    names = {"replica_seconds": "replica-s", "cold_starts": "cold starts", "scale_to_zero_seconds": "to zero"}
    return ", ".join(label for key, label in names.items() if not r[key]["agree"])
