"""`make load`: the Locust scenario, headless, against the local gateway; starts `make up`'s shop when none runs.

USERS, SPAWN_RATE and DURATION set the load; stats go to bench/results/load_*.csv and a summary is printed.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from local.config import GATEWAY_PORT
from local.processes import ROOT, spawn, stop

RESULTS = ROOT / "bench" / "results"
GATEWAY = f"http://127.0.0.1:{GATEWAY_PORT}"


def gateway_up() -> bool:
    try:
        return httpx.get(f"{GATEWAY}/products", params={"limit": 1}, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def running_shop():
    """The shop `make up` runs; started here (and stopped afterwards) when it is not running yet."""
    if gateway_up():
        yield
        return
    print("no shop at :8080 — starting one for this run", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "shop.log", "ab") as log_file:  # the runner stops (and stops its shop) if this dies
        shop = spawn([sys.executable, "-m", "local.run"], log_file=log_file)
    try:
        deadline = time.monotonic() + 120
        while not gateway_up():
            if shop.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the shop did not start; see {RESULTS / 'shop.log'}")
            time.sleep(1)
        yield
    finally:
        stop([shop], grace=15)


def run_locust(users: int, spawn_rate: float, duration: str, prefix: Path, host: str = GATEWAY) -> int:
    command = [str(Path(sys.executable).parent / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"),
               "--headless", "--users", str(users), "--spawn-rate", str(spawn_rate), "--run-time", duration,
               "--host", host, "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"]
    return subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode


def summary(stats_csv: Path) -> list[dict]:
    rows = []
    with open(stats_csv) as handle:
        for row in csv.DictReader(handle):
            rows.append({"endpoint": row["Name"], "requests": int(row["Request Count"]),
                         "failures": int(row["Failure Count"]), "p50_ms": row["50%"], "p95_ms": row["95%"],
                         "p99_ms": row["99%"], "rps": f"{float(row['Requests/s']):.1f}"})
    return rows


def print_summary(rows: list[dict]) -> None:
    print(f"\n{'endpoint':28} {'requests':>9} {'failures':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>7}")
    for row in rows:
        print(f"{row['endpoint']:28} {row['requests']:>9} {row['failures']:>9} {row['p50_ms']:>8} "
              f"{row['p95_ms']:>8} {row['p99_ms']:>8} {row['rps']:>7}")


def load(users: int, spawn_rate: float, duration: str, host: str | None = None) -> list[dict]:
    """Run the scenario against `host` (default: the local gateway)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    prefix = RESULTS / "load"
    code = run_locust(users, spawn_rate, duration, prefix, host or GATEWAY)
    rows = summary(Path(f"{prefix}_stats.csv"))
    print_summary(rows)
    print(f"\nstats: {prefix}_stats.csv, {prefix}_failures.csv, {prefix}_stats_history.csv")
    if code not in (0, 1):  # locust exits 1 when any request failed; the summary says which
        raise SystemExit(code)
    return rows


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=int(os.environ.get("USERS", "20")))
    parser.add_argument("--spawn-rate", type=float, default=float(os.environ.get("SPAWN_RATE", "5")))
    parser.add_argument("--duration", default=os.environ.get("DURATION", "30s"))
    return parser.parse_args()


def main() -> None:
    settings = options()
    with running_shop():
        load(settings.users, settings.spawn_rate, settings.duration)


if __name__ == "__main__":
    main()
