"""Traffic as requests per second per endpoint, from three sources:

* an Azure Functions 2019 trace (per-minute invocation counts per function; `*_run.csv` beside it for durations),
  each minute's count spread over its 60 seconds by a seeded Poisson process (given the count, a Poisson process
  puts each arrival uniformly in the minute: a multinomial draw), mapped to shop endpoints by a mapping file;
* a per-second CSV with the header `second,endpoint,requests`;
* a generated shop day (bench/sim/shop_day.json): a diurnal shape, a flash-sale burst, PingSource ticks.

Columns are always found by their header names: the trace's files do not share one column order. Third-party
traces are read where they lie (../shared/traces) and never copied into the repository.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DAY_SECONDS = 86_400
HERE = Path(__file__).resolve().parent
SHOP_DAY = HERE / "shop_day.json"
AZURE_MAPPING = HERE / "azure_mapping.json"
_MINUTE_COLUMN = re.compile(r"^(?:minute_)?(\d+)$")


@dataclass
class Traffic:
    name: str
    description: str
    seconds: int
    arrivals: dict[str, np.ndarray]  # endpoint -> requests in each second
    trace_service_time: dict[str, float] = field(default_factory=dict)  # endpoint -> seconds, the trace's own
    origin: dict[str, list[str]] = field(default_factory=dict)  # endpoint -> the trace functions merged into it
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return int(sum(int(counts.sum()) for counts in self.arrivals.values()))


def scaled_counts(counts: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """counts x scale in whole requests, rounding each up or down at random so the expectation is exact."""
    if scale == 1:
        return counts.astype(np.int64)
    exact = counts.astype(float) * scale
    whole = np.floor(exact)
    return (whole + (rng.random(exact.shape) < exact - whole)).astype(np.int64)


def spread_minutes(per_minute: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-minute counts -> per-second arrivals of a Poisson process with those counts (one multinomial per minute)."""
    seconds = rng.multinomial(per_minute.astype(np.int64), np.full(60, 1 / 60))
    return seconds.reshape(-1).astype(np.int64)


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = [column.strip() for column in next(reader)]
        return header, [row for row in reader if row]


def read_azure_invocations(path: Path) -> list[dict]:
    """One dict per function: its hashes, trigger (when the file has one) and per-minute counts, by header names."""
    header, rows = _rows(path)
    minutes = sorted(((int(match.group(1)), index) for index, name in enumerate(header)
                      if (match := _MINUTE_COLUMN.match(name))), key=lambda pair: pair[0])
    if not minutes:
        raise ValueError(f"{path}: no minute columns (minute_1 ... or 1 ...)")
    column = {name: index for index, name in enumerate(header)}
    for needed in ("HashFunction", "HashApp", "HashOwner"):
        if needed not in column:
            raise ValueError(f"{path}: no {needed} column")
    functions = []
    for row in rows:
        counts = np.array([float(row[index] or 0) for _, index in minutes])
        functions.append({"function": row[column["HashFunction"]], "app": row[column["HashApp"]],
                          "owner": row[column["HashOwner"]],
                          "trigger": row[column["Trigger"]] if "Trigger" in column else None, "per_minute": counts})
    return functions


def read_azure_durations(path: Path) -> dict[str, float]:
    """Average execution time in seconds per HashFunction (the file's `Average` is milliseconds)."""
    if not path.exists():
        return {}
    header, rows = _rows(path)
    column = {name: index for index, name in enumerate(header)}
    return {row[column["HashFunction"]]: float(row[column["Average"]]) / 1000 for row in rows}


def read_azure_memory(path: Path) -> dict[str, float]:
    """Average allocated MiB per HashApp."""
    if not path.exists():
        return {}
    header, rows = _rows(path)
    column = {name: index for index, name in enumerate(header)}
    return {row[column["HashApp"]]: float(row[column["AverageAllocatedMb"]]) for row in rows}


def companion(invocations: Path, kind: str) -> Path:
    """The durations ("run") or memory ("mem") file beside an invocations file: 10_inv.csv -> 10_run.csv, and in
    the full data set invocations_per_function_md.anon.d01.csv -> function_durations_percentiles.anon.d01.csv /
    app_memory_percentiles.anon.d01.csv."""
    full = {"run": "function_durations_percentiles", "mem": "app_memory_percentiles"}
    if invocations.name.startswith("invocations_per_function_md"):
        return invocations.with_name(invocations.name.replace("invocations_per_function_md", full[kind]))
    return invocations.with_name(re.sub(r"inv(\.csv)$", kind + r"\1", invocations.name))


def azure(path: Path, scale: float, seed: int, mapping: dict, durations: str = "endpoint") -> Traffic:
    """An Azure Functions 2019 trace mapped to endpoints. Functions the mapping names are merged into their
    endpoint; the others become `azure-<hash>` services configured like the mapping's `template` endpoint, or are
    left out when the mapping says `"unmapped": "drop"` (the full data set has tens of thousands of functions).
    `durations="trace"` takes every service time from the trace's own averages."""
    rng = np.random.default_rng(seed)
    functions = read_azure_invocations(path)
    run = read_azure_durations(companion(path, "run"))
    memory = read_azure_memory(companion(path, "mem"))
    rules = mapping.get("functions", {})
    arrivals: dict[str, np.ndarray] = {}
    weighted_duration: dict[str, float] = {}
    origin: dict[str, list[str]] = {}
    notes = []
    for function in functions:
        endpoint = next((name for prefix, name in rules.items() if function["function"].startswith(prefix)), None)
        mapped = endpoint is not None
        if not mapped and mapping.get("unmapped") == "drop":
            continue
        endpoint = endpoint or f"azure-{function['function'][:8]}"
        counts = scaled_counts(function["per_minute"], scale, rng)
        per_second = spread_minutes(counts, rng)
        arrivals[endpoint] = arrivals.get(endpoint, 0) + per_second
        origin.setdefault(endpoint, []).append(function["function"][:8])
        duration = run.get(function["function"])
        if duration is not None and (durations == "trace" or not mapped):
            weighted_duration[endpoint] = weighted_duration.get(endpoint, 0.0) + duration * float(counts.sum())
        if function["app"] in memory:
            notes.append(f"{function['function'][:8]}: app memory {memory[function['app']]:.0f} MiB on average in "
                         "the trace (not used: costs take the manifest's resources)")
    service_time = {}
    for endpoint, total in weighted_duration.items():
        requests = float(arrivals[endpoint].sum())
        if requests:
            service_time[endpoint] = total / requests
    return Traffic(name=path.name, description=f"Azure Functions 2019 trace {path}, x{scale:g}, seed {seed}",
                   seconds=len(next(iter(arrivals.values()))) if arrivals else DAY_SECONDS, arrivals=arrivals,
                   trace_service_time=service_time, origin=origin, notes=notes)


def per_second_csv(path: Path, scale: float, seed: int) -> Traffic:
    """`second,endpoint,requests` rows (any order, seconds from 0; missing seconds have no requests)."""
    header, rows = _rows(path)
    column = {name: index for index, name in enumerate(header)}
    for needed in ("second", "endpoint", "requests"):
        if needed not in column:
            raise ValueError(f"{path}: the header needs second,endpoint,requests (has {','.join(header)})")
    seconds = np.array([int(float(row[column["second"]])) for row in rows], dtype=np.int64)
    names = [row[column["endpoint"]] for row in rows]
    counts = np.array([float(row[column["requests"]]) for row in rows])
    if len(seconds) and seconds.min() < 0:
        raise ValueError(f"{path}: negative second")
    length = int(seconds.max()) + 1 if len(seconds) else 0
    rng = np.random.default_rng(seed)
    arrivals = {}
    for name in sorted(set(names)):
        mask = np.array([n == name for n in names])
        series = np.zeros(length)
        np.add.at(series, seconds[mask], counts[mask])
        arrivals[name] = scaled_counts(series, scale, rng)
    return Traffic(name=path.name, description=f"per-second trace {path}, x{scale:g}", seconds=length,
                   arrivals=arrivals)


def diurnal_weights(hourly_share: list[float], seconds: int = DAY_SECONDS) -> np.ndarray:
    """The hourly shares interpolated linearly between hour midpoints (wrapping at midnight), summing to 1."""
    shares = np.asarray(hourly_share, dtype=float)
    hours = (np.arange(seconds) + 0.5) / 3600
    positions = np.concatenate([[-0.5], np.arange(24) + 0.5, [24.5]])
    values = np.concatenate([[shares[-1]], shares, [shares[0]]])
    weights = np.interp(hours, positions, values)
    return weights / weights.sum()


def clock_seconds(text: str) -> int:
    hours, _, minutes = str(text).partition(":")
    return int(hours) * 3600 + int(minutes or 0) * 60


def shop_day(spec: dict, scale: float, seed: int) -> Traffic:
    """The generated day: requests_per_day x the diurnal shape x the flash sale x scale, Poisson per second;
    scheduled endpoints get one request every `period` seconds whatever the scale (a PingSource)."""
    rng = np.random.default_rng(seed)
    weights = diurnal_weights(spec["hourly_share"])
    sale = spec.get("flash_sale") or {}
    boost = np.ones(DAY_SECONDS)
    if sale:
        start = clock_seconds(sale["start"])
        length, ramp = int(sale["minutes"] * 60), int(sale.get("ramp_seconds", 60))
        ramp_up = np.clip((np.arange(DAY_SECONDS) - start) / max(ramp, 1), 0, 1)
        ramp_down = np.clip((start + length - np.arange(DAY_SECONDS)) / max(ramp, 1), 0, 1)
        boost += (sale["multiplier"] - 1) * np.minimum(ramp_up, ramp_down)
    arrivals = {}
    for name in sorted(spec["requests_per_day"]):
        rate = spec["requests_per_day"][name] * weights * scale
        if name in sale.get("endpoints", []):
            rate = rate * boost
        arrivals[name] = rng.poisson(rate).astype(np.int64)
    for name, period in sorted((spec.get("scheduled") or {}).items()):
        ticks = np.zeros(DAY_SECONDS, dtype=np.int64)
        ticks[int(period) // 2::int(period)] = 1
        arrivals[name] = ticks
    description = (f"generated shop day ({spec.get('name', 'shop-day')}): {spec.get('description', '')} "
                   f"x{scale:g}, seed {seed}")
    return Traffic(name=spec.get("name", "shop-day"), description=description, seconds=DAY_SECONDS,
                   arrivals=arrivals)


def load(trace: str | None, scale: float, seed: int | None, mapping_path: Path = AZURE_MAPPING,
         durations: str = "endpoint") -> Traffic:
    """The default generated day, or the trace at `trace`: an Azure `*_inv.csv` (or a folder holding exactly one),
    or a per-second CSV."""
    if not trace:
        spec = json.loads(SHOP_DAY.read_text())
        return shop_day(spec, scale, spec.get("seed", 1) if seed is None else seed)
    path = Path(trace)
    if path.is_dir():
        candidates = sorted([*path.glob("*_inv.csv"), *path.glob("invocations_per_function*.csv")])
        if len(candidates) != 1:
            names = ", ".join(candidate.name for candidate in candidates) or "none"
            raise SystemExit(f"{path} holds {len(candidates)} invocation files ({names}): name one as TRACE")
        path = candidates[0]
    if not path.exists():
        raise SystemExit(f"no trace at {path}")
    with open(path, newline="") as handle:
        header = [column.strip() for column in next(csv.reader(handle))]
    seed = 1 if seed is None else seed
    if "second" in header and "endpoint" in header:
        return per_second_csv(path, scale, seed)
    if "HashFunction" in header:
        mapping = json.loads(Path(mapping_path).read_text()) if mapping_path else {}
        return azure(path, scale, seed, mapping, durations)
    raise SystemExit(f"{path}: neither an Azure Functions trace (HashFunction, minute columns) nor a per-second "
                     "CSV (second,endpoint,requests)")


def template_of(name: str, mapping: dict) -> str | None:
    """The endpoint whose manifest an unmapped `azure-<hash>` service is configured like."""
    return mapping.get("template") if name.startswith("azure-") else None


def months_factor(seconds: int, days_per_month: float) -> float:
    """How many times the simulated span fits in a month."""
    return days_per_month * DAY_SECONDS / seconds if seconds else 0.0

