"""`make startup FUNCTION=catalog-get-product`: where a cold start's time goes, next to the hello-world's and its
store's library floor's (bench/floors: the fixed libraries alone, no code of ours).

All three start as `make bench` starts them (the image's environment, bench/runtime.py) while the warm shop answers
their peers, and are timed to the first 2xx of the function's cold-start probe (bench/probes.py). A
`sitecustomize` put first on their PYTHONPATH marks, in wall-clock time from the spawn and in CPU time of the
process, the moments the phases begin: the interpreter is up; functions-framework (Flask included) is imported and
the function's own import begins; the function is loaded and gunicorn starts; the worker is forked. The last phase
runs to the first successful answer: the worker's boot and the first request (client creation, connection,
schema check). Median of STARTUP_RUNS (5) starts each, the three alternated.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.probes import Probe, probe
from bench.run import HELLO, first_answer, floor_of, floor_variables, stores, table, warm_shop
from bench.runtime import use_image_environment
from local.processes import ROOT, free_port, function_command, function_env, spawn, stop
from shared.routes import ROUTES

RUNS = int(os.environ.get("STARTUP_RUNS", "5"))
MARKER = '''
import os, sys, time
_log = open(os.environ["STARTUP_MARKS"], "a")
_spawned = float(os.environ["STARTUP_SPAWNED"])


def mark(phase):
    _log.write(f"{phase}\\t{(time.time() - _spawned) * 1000:.1f}\\t{time.process_time() * 1000:.1f}\\n")
    _log.flush()


mark("interpreter up")
os.register_at_fork(after_in_child=lambda: mark("worker forked"))


class _Marks:
    phases = {"functions_framework.aio": "function import begins", "gunicorn.arbiter": "gunicorn starts"}

    def find_spec(self, name, path, target=None):
        phase = self.phases.pop(name, None)
        if phase:
            mark(phase)
        return None


sys.meta_path.insert(0, _Marks())
'''
PHASES = [("interpreter start", "interpreter up"), ("functions-framework and Flask", "function import begins"),
          ("the function's import", "gunicorn starts"), ("gunicorn to the worker's fork", "worker forked"),
          ("worker boot and first request", "first 2xx")]


def one_start(route, settings: dict, request: Probe, marker_dir: str,
              extra: dict | None = None) -> dict[str, tuple[float, float]]:
    """Wall and CPU milliseconds at each mark of one start (`extra`: a library floor's store variables)."""
    marks = Path(marker_dir) / "marks.tsv"
    marks.write_text("")
    port = free_port()
    client = httpx.Client(timeout=30)
    env = {**function_env(route, port, None, settings), **(extra or {}), "PYTHONPATH": f"{marker_dir}:{ROOT}",
           "STARTUP_MARKS": str(marks)}
    spawned = time.time()
    process = spawn(function_command(), {**env, "STARTUP_SPAWNED": repr(spawned)}, subprocess.DEVNULL)
    try:
        response = first_answer(route.name, process, client, port, request)
        answered = (time.time() - spawned) * 1000
        if route is not HELLO and not response.is_success:
            raise RuntimeError(f"{route.name}'s probe answered {response.status_code}: {response.text}")
    finally:
        stop([process])
        client.close()
    found = {}
    for line in marks.read_text().splitlines():
        phase, wall, cpu = line.split("\t")
        found.setdefault(phase, (float(wall), float(cpu)))
    found["first 2xx"] = (answered, 0.0)
    return found


def phases(starts: list[dict[str, tuple[float, float]]]) -> list[float]:
    """Median wall milliseconds of each phase."""
    result, previous = [], "spawn"
    for _, mark in PHASES:
        result.append(statistics.median(start[mark][0] - (start[previous][0] if previous != "spawn" else 0.0)
                                        for start in starts))
        previous = mark
    return result


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    routes = {route.name: route for route in ROUTES}
    if name not in routes:
        raise SystemExit(f"make startup FUNCTION=… takes one of: {', '.join(routes)}")
    print(use_image_environment(), flush=True)
    with tempfile.TemporaryDirectory() as marker_dir, stores() as settings:
        (Path(marker_dir) / "sitecustomize.py").write_text(MARKER)
        with warm_shop(settings) as (shop, _, fixtures):
            floor = floor_of(routes[name])
            timed = {HELLO.name: [], floor.name: [], name: []}
            for _ in range(RUNS):  # alternated, so a change in the machine's load falls on all three
                timed[HELLO.name].append(one_start(HELLO, shop.settings, Probe("GET", "/"), marker_dir))
                timed[floor.name].append(one_start(floor, shop.settings, Probe("GET", "/"), marker_dir,
                                                   floor_variables(shop.settings)))
                timed[name].append(one_start(routes[name], shop.settings, probe(name, fixtures), marker_dir))
    hello, floored, function = (phases(timed[key]) for key in timed)
    rows = [{"phase": label, "hello ms": round(h), f"{floor.name} ms": round(f), f"{name} ms": round(n),
             "over its floor ms": round(n - f)} for (label, _), h, f, n in zip(PHASES, hello, floored, function)]
    rows.append({"phase": "spawn to first 2xx", "hello ms": round(sum(hello)), f"{floor.name} ms": round(sum(floored)),
                 f"{name} ms": round(sum(function)), "over its floor ms": round(sum(function) - sum(floored))})
    print(table(f"\nWhere a cold start goes (median of {RUNS} starts each, wall-clock ms)", rows))


if __name__ == "__main__":
    main()
