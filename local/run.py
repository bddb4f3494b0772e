"""`make up` / `make down`: the whole shop on this machine, no Docker — every endpoint its own functions-framework
process.

Stores come from the environment (MONGODB_URL, REDIS_URL, DATABASE_URL) or their local defaults; without
MONGODB_URL a SecantusDB server is started with its data under .local/. Ctrl-C or SIGTERM stops everything started
here; a second one while it stops is ignored. Every process started here records its pid and start time in
.local/run/shop.pids, and stops on its own if the runner dies: the next `make up`, or `make down`, stops what an
earlier run left behind, and never a process it did not start.

    python -m local.run [up]   # LOCAL_FUNCTIONS=catalog-get-product,... starts only those functions
    SCALING=knative python -m local.run   # functions scale from zero, as under Knative (local/scaling/)
    python -m local.run down
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from local import pids
from local.config import (FUNCTION_BASE_PORT, GATEWAY_PORT, LOCAL_DEFAULTS, LOCAL_DIR, LOCAL_FUNCTIONS,
                          METRICS_BASE_PORT, MONGO_PORT, SCALING, local_setting)
from local.migrate import run_step
from local.processes import Cancelled, is_listening, stop
from local.service_keys import KEYS_DIR_SETTING, KeySet
from local.shop import KNATIVE, LocalShop, replica_pid_file
from local.stores import StoreMissing, ensure_postgres, ensure_redis, start_mongo
from shared.routes import ROUTES, Route

__all__ = ["LocalShop", "default_ports", "main"]

RELAY_EVERY_SECONDS = 5.0
RUN_DIR = LOCAL_DIR / "run"
PID_FILE = RUN_DIR / "shop.pids"
STATE_FILE = RUN_DIR / "functions.json"
KEYS_DIR = RUN_DIR / "keys"
SCALING_MODES = ("", "always-on", KNATIVE)


class Shutdown:
    """SIGINT, SIGTERM or SIGHUP asks the runner to stop; once it is stopping, further signals are only noted.

    The handlers never raise: an exception from a signal lands wherever the main thread is, and a second Ctrl-C
    used to interrupt the stopping itself and leave every function running."""

    def __init__(self) -> None:
        self.requested: str | None = None

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # under nohup the shop outlives the terminal
            signal.signal(signal.SIGHUP, self._handle)

    def __call__(self) -> bool:
        return self.requested is not None

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.requested is not None:
            # os.write, not print: the main thread may be inside a print to the same stream.
            os.write(2, f"already stopping the shop; {name} ignored\n".encode())
            return
        self.requested = name


def default_ports(routes: tuple[Route, ...] = ROUTES) -> dict[str, tuple[int, int]]:
    return {route.name: (FUNCTION_BASE_PORT + index, METRICS_BASE_PORT + index) for index, route in enumerate(routes)}


def selected_routes() -> tuple[Route, ...]:
    """The routes LOCAL_FUNCTIONS names (every route when it is empty)."""
    if not LOCAL_FUNCTIONS:
        return ROUTES
    unknown = set(LOCAL_FUNCTIONS) - {route.name for route in ROUTES}
    if unknown:
        raise SystemExit(f"LOCAL_FUNCTIONS names no such functions: {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(route.name for route in ROUTES)}")
    return tuple(route for route in ROUTES if route.name in LOCAL_FUNCTIONS)


def up() -> int:
    shutdown = Shutdown()
    shutdown.install()
    if SCALING not in SCALING_MODES:
        print(f"SCALING={SCALING} is not a mode: use SCALING=knative, or leave it unset", file=sys.stderr)
        return 1
    if not stop_earlier_run(stop_a_live_runner=False):
        return 1
    routes = selected_routes()
    ports = default_ports(routes)
    busy = _busy_ports([GATEWAY_PORT, *(port for pair in ports.values() for port in pair)])
    if busy:
        print(f"cannot start the shop: {_holders(busy)}\nThis checkout's shop did not start them, so they are left "
              "alone. Stop them, or set GATEWAY_PORT, FUNCTION_BASE_PORT or METRICS_BASE_PORT to move the shop.",
              file=sys.stderr)
        return 1
    pid_file = pids.PidFile(PID_FILE)
    pid_file.add("runner", os.getpid())
    settings = {name: local_setting(name) for name in LOCAL_DEFAULTS}
    # This run's service keys: fresh every run, readable by this user only, gone when the shop stops.
    settings[KEYS_DIR_SETTING] = str(KeySet.generate().save(KEYS_DIR))
    started: list[subprocess.Popen] = []
    shop = LocalShop(settings, GATEWAY_PORT, ports, routes=routes, relay_every=RELAY_EVERY_SECONDS,
                     state_file=STATE_FILE, pid_file=pid_file, scaling=SCALING or None)
    try:
        started += _start_stores(settings, pid_file, shutdown)
        print("migrating: PostgreSQL migrations and MongoDB indexes (make migrate)", flush=True)
        run_step(settings)
        os.environ.update(settings)
        from local.seed import seed

        added = asyncio.run(seed(only_if_empty=True))
        if added:
            print(f"seeded the demo catalog: {added} products")
        if not shutdown():
            shop.start(require_all=False, cancelled=shutdown)
            _print_routes(shop)
        while not shutdown():
            time.sleep(0.2)
        print(f"\nstopping the shop ({shutdown.requested})", flush=True)
    except StoreMissing as missing:
        print(f"cannot start the shop: {missing}", file=sys.stderr)
        return 1
    except Cancelled:
        print(f"\nstopping the shop ({shutdown.requested})", flush=True)
    except (RuntimeError, TimeoutError) as failure:
        print(f"cannot start the shop: {failure}", file=sys.stderr)
        return 1
    finally:
        shop.stop()
        stop(started)
        pid_file.remove()
        STATE_FILE.unlink(missing_ok=True)
        shutil.rmtree(KEYS_DIR, ignore_errors=True)
    return 0


def down() -> int:
    """Stop the shop of this checkout: a running runner (which stops what it started), then anything left."""
    return 0 if stop_earlier_run(stop_a_live_runner=True) else 1


def stop_earlier_run(stop_a_live_runner: bool) -> bool:
    """Stop what an earlier run of this checkout left running, saying what it found; never a recycled pid.
    False when a runner of this checkout is alive and `stop_a_live_runner` is false."""
    recorded = pids.read(PID_FILE) + pids.read(replica_pid_file(PID_FILE))
    for process in recorded:
        if process.holds_pid_as_stranger():
            print(f"pid {process.pid} was {process.name} in an earlier run; it is now another process "
                  f"({pids.command_line(process.pid)}): leaving it alone")
    alive = [process for process in recorded if process.is_alive()]
    runner = next((process for process in alive if process.name == "runner"), None)
    if runner is not None:
        if not stop_a_live_runner:
            print(f"the shop of this checkout is already running (runner pid {runner.pid}); `make down` stops it",
                  file=sys.stderr)
            return False
        print(f"stopping the shop (runner pid {runner.pid})", flush=True)
        pids.terminate([runner], grace=30)  # it stops what it started; anything it leaves is stopped below
        alive = [process for process in alive if process is not runner and process.is_alive()]
        heading = "the runner left"
    else:
        heading = "an earlier run of this checkout (its runner is gone) left"
    if alive:
        print(f"{heading} {len(alive)} processes running; stopping them:")
        for process in alive:
            print(f"  pid {process.pid} ({process.name}): {pids.command_line(process.pid)[:100]}", flush=True)
        pids.terminate(alive)
    if runner is None and not alive and stop_a_live_runner:
        print("no shop of this checkout is running")
    PID_FILE.unlink(missing_ok=True)
    replica_pid_file(PID_FILE).unlink(missing_ok=True)
    return True


def _start_stores(settings: dict[str, str], pid_file: pids.PidFile, shutdown: Shutdown) -> list[subprocess.Popen]:
    """The stores the shop needs: started here where possible; the processes this started are returned."""
    started = []
    if not os.environ.get("MONGODB_URL"):
        if is_listening("127.0.0.1", MONGO_PORT):
            print(f"using the MongoDB-protocol server already listening on 127.0.0.1:{MONGO_PORT}")
        else:
            print(f"starting SecantusDB (MongoDB protocol) on 127.0.0.1:{MONGO_PORT}, data in {LOCAL_DIR / 'mongo'}")
            with open(_local_log("mongo"), "ab") as log_file:
                mongo = start_mongo(MONGO_PORT, str(LOCAL_DIR / "mongo"), log_file, cancelled=shutdown)
            started.append(mongo)
            pid_file.add("SecantusDB", mongo.pid)
    ensure_redis(settings["REDIS_URL"])
    ensure_postgres(settings["DATABASE_URL"])
    return started


def _print_routes(shop: LocalShop) -> None:
    if shop.scaling == KNATIVE:
        print(f"\nthe shop is up at {shop.url}, each function scaling from zero  (Ctrl-C stops it; scaling at "
              f"{shop.url}/_local/scaling, `make top` shows it live)", flush=True)
        for route in shop.routes:
            port, _ = shop.function_ports[route.name]
            scaling = route.scaling
            print(f"  {route.method or 'EVENT':6} {route.path or '-':32} {route.name:30} :{port}  target "
                  f"{scaling.target} cc {scaling.container_concurrency} min {scaling.min_scale}", flush=True)
        return
    print(f"\nthe shop is up at {shop.url}  (Ctrl-C stops it; states at {shop.url}/_local/functions)", flush=True)
    for route in shop.routes:
        port, metrics_port = shop.function_ports[route.name]
        state = shop.states[route.name].state
        print(f"  {route.method or 'EVENT':6} {route.path or '-':32} {route.name:30} :{port} metrics :{metrics_port}"
              f"{'' if state == 'running' else '  ' + state}", flush=True)


def _busy_ports(ports: list[int]) -> list[int]:
    return [port for port in ports if is_listening("127.0.0.1", port)]


def _holders(ports: list[int]) -> str:
    """Which process holds each busy port, as far as /proc tells (another user's processes may be hidden)."""
    lines = []
    for port in ports:
        holders = pids.listeners(port)
        named = ", ".join(f"pid {pid} ({pids.command_line(pid)[:100]})" for pid in holders) or \
            "a process this user cannot see (try `sudo ss -ltnp`)"
        lines.append(f"port {port} is in use by {named}")
    return "\n".join(lines)


def _local_log(name: str) -> Path:
    path = LOCAL_DIR / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{name}.log"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["up", "down"], default="up")
    command = parser.parse_args(argv).command
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("local").setLevel(logging.INFO)
    return up() if command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
