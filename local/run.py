"""`make up`: the whole shop on this machine, no Docker — every endpoint its own functions-framework process.

Stores come from the environment (MONGODB_URL, REDIS_URL, DATABASE_URL) or their local defaults; without
MONGODB_URL a SecantusDB server is started with its data under .local/. Ctrl-C stops everything started here.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from local.config import FUNCTION_BASE_PORT, GATEWAY_PORT, LOCAL_DEFAULTS, METRICS_BASE_PORT, local_setting
from local.ping import ping
from local.processes import ROOT, Running, free_ports, is_listening, start_function, stop, wait_for_port
from local.stores import StoreMissing, ensure_postgres, ensure_redis, start_mongo
from shared.peers import url_variable
from shared.routes import ROUTES, Route


RELAY_EVERY_SECONDS = 5.0


@dataclass
class LocalShop:
    """The functions and the gateway, started from the route table with one set of settings."""

    settings: dict[str, str]
    gateway_port: int
    function_ports: dict[str, tuple[int, int]]  # route name -> (port, metrics port)
    routes: tuple[Route, ...] = ROUTES
    log_dir: Path | None = None
    relay_every: float | None = None  # seconds between PingSource-like ticks to the outbox relay
    functions: dict[str, Running] = field(default_factory=dict)
    gateway: subprocess.Popen | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def on_free_ports(cls, settings: dict[str, str], log_dir: Path | None = None) -> LocalShop:
        """A shop whose gateway and functions take ports nothing else uses (tests, benchmarks)."""
        gateway_port, *ports = free_ports(1 + 2 * len(ROUTES))
        pairs = {route.name: (ports[2 * index], ports[2 * index + 1]) for index, route in enumerate(ROUTES)}
        return cls(settings, gateway_port, pairs, log_dir=log_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start(self) -> None:
        # Each function finds the others the way a Knative Service would, by name: here through <NAME>_URL.
        peers = {url_variable(name): f"http://127.0.0.1:{port}" for name, (port, _) in self.function_ports.items()}
        # Orders publish to K_SINK; here it is the notify function itself, as the broker's Trigger would deliver.
        sink = {"K_SINK": peers[url_variable("notify-order-created")]}
        self.settings = {**peers, **sink, **self.settings}
        for route in self.routes:
            port, metrics_port = self.function_ports[route.name]
            self.functions[route.name] = start_function(route, port, metrics_port, self.settings, self._log(route.name))
        upstreams = {name: running.url for name, running in self.functions.items()}
        env = {**os.environ, **self.settings, "GATEWAY_UPSTREAMS": json.dumps(upstreams),
               "PORT": str(self.gateway_port), "HOST": "127.0.0.1"}
        log = self._log("gateway")
        self.gateway = subprocess.Popen([sys.executable, "-m", "local.gateway"], env=env, cwd=ROOT, stdout=log,
                                        stderr=subprocess.STDOUT if log else None, start_new_session=True)
        for running in self.functions.values():
            try:
                wait_for_port(running.port, running.process)
            except RuntimeError as failure:
                where = f"; see {self.log_dir / (running.name + '.log')}" if self.log_dir else ""
                raise RuntimeError(f"function {running.name} did not start{where}") from failure
        wait_for_port(self.gateway_port, self.gateway)
        if self.relay_every:
            threading.Thread(target=self._tick_relay_forever, daemon=True).start()

    def restart(self, name: str) -> None:
        """Start a function again on its port (after it died or was killed), as Knative would."""
        stop([self.functions[name].process])
        route = next(route for route in self.routes if route.name == name)
        port, metrics_port = self.function_ports[name]
        self.functions[name] = start_function(route, port, metrics_port, self.settings, self._log(name))
        wait_for_port(port, self.functions[name].process)

    def tick_relay(self) -> int:
        """Send the relay one PingSource-style CloudEvent; returns the HTTP status."""
        return ping(self.functions["orders-outbox-relay"].url)

    def _tick_relay_forever(self) -> None:
        while not self._stopping.wait(self.relay_every):
            try:
                self.tick_relay()
            except httpx.HTTPError:
                pass  # the relay is down or restarting; the next tick tries again

    def stop(self) -> None:
        self._stopping.set()
        stop([running.process for running in self.functions.values()] + ([self.gateway] if self.gateway else []))

    def _log(self, name: str):
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{name}.log", "ab")


def default_ports() -> dict[str, tuple[int, int]]:
    return {route.name: (FUNCTION_BASE_PORT + index, METRICS_BASE_PORT + index) for index, route in enumerate(ROUTES)}


def main() -> int:
    settings = {name: local_setting(name) for name in LOCAL_DEFAULTS}
    ports = default_ports()
    busy = _busy_ports([GATEWAY_PORT, *(port for pair in ports.values() for port in pair)])
    if busy:
        print(f"cannot start the shop: ports {busy} are in use (is `make up` already running?). Set GATEWAY_PORT, "
              "FUNCTION_BASE_PORT or METRICS_BASE_PORT to move it.", file=sys.stderr)
        return 1
    started: list[subprocess.Popen] = []
    try:
        started += _start_stores(settings)
    except StoreMissing as missing:
        print(f"cannot start the shop: {missing}", file=sys.stderr)
        stop(started)
        return 1
    os.environ.update(settings)
    from local.seed import seed

    added = asyncio.run(seed(only_if_empty=True))
    if added:
        print(f"seeded the demo catalog: {added} products")
    shop = LocalShop(settings, GATEWAY_PORT, ports, relay_every=RELAY_EVERY_SECONDS)
    # Ctrl-C, or SIGINT/SIGTERM from a supervisor (a background shell ignores SIGINT unless told otherwise).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        shop.start()
        print(f"\nthe shop is up at {shop.url}  (Ctrl-C stops it)", flush=True)
        for route in ROUTES:
            port, metrics_port = shop.function_ports[route.name]
            print(f"  {route.method or 'EVENT':6} {route.path or '-':32} {route.name:30} :{port} metrics :{metrics_port}")
        _supervise(shop)
    except KeyboardInterrupt:
        print("\nstopping the shop")
    except (RuntimeError, TimeoutError) as failure:
        print(f"cannot start the shop: {failure}", file=sys.stderr)
        return 1
    finally:
        shop.stop()
        stop(started)
    return 0


def _start_stores(settings: dict[str, str]) -> list[subprocess.Popen]:
    """The stores the shop needs: started here where possible; the processes this started are returned."""
    started = []
    if not os.environ.get("MONGODB_URL"):
        if is_listening("127.0.0.1", 27017):
            print("using the MongoDB-protocol server already listening on 127.0.0.1:27017")
        else:
            print("starting SecantusDB (MongoDB protocol) on 127.0.0.1:27017, data in .local/mongo")
            started.append(start_mongo(27017, str(ROOT / ".local" / "mongo"), open(_local_log("mongo"), "ab")))
    ensure_redis(settings["REDIS_URL"])
    ensure_postgres(settings["DATABASE_URL"])
    return started


def _supervise(shop: LocalShop) -> None:
    """Restart a function that exits, as Knative would start a new replica; give up on one that cannot start."""
    given_up: set[str] = set()
    while True:
        for name, running in list(shop.functions.items()):
            if name not in given_up and running.process.poll() is not None:
                print(f"function {name} exited with {running.process.returncode}; restarting it", file=sys.stderr)
                try:
                    shop.restart(name)
                except (RuntimeError, TimeoutError) as failure:
                    print(f"function {name} does not start again ({failure}); leaving it down", file=sys.stderr)
                    given_up.add(name)
        time.sleep(1)


def _busy_ports(ports: list[int]) -> list[int]:
    return [port for port in ports if is_listening("127.0.0.1", port)]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _local_log(name: str) -> Path:
    path = ROOT / ".local" / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{name}.log"


if __name__ == "__main__":
    sys.exit(main())
