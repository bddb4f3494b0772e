"""The functions and the gateway of the local shop, each its own process, kept running like a kubelet would.

A function that exits is started again on its port, at once the first time and then after a delay that doubles
with each further exit, up to a cap (Kubernetes' CrashLoopBackOff); a function that stays up a while starts again
from no delay. Nothing ever gives up. The state of every function is written to a JSON file that the gateway
serves at /_local/functions.

With `scaling="knative"` no function is started here: the gateway starts, scales and stops their replicas
(local/scaling/, with the same backoff), and answers on each function's port; this only keeps the gateway running.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from local.broker import BROKER_PATH
from local.environment import PUBLISHED_TO, broker_environment, sender_token
from local.pids import PidFile, descendants
from local.ping import ping
from local.processes import (Cancelled, Running, free_ports, is_listening, spawn, start_function, stop, sweep,
                             wait_for_port)
from shared.peers import url_variable
from shared.routes import ROUTES, Route

log = logging.getLogger("local.shop")

STARTING, RUNNING, BACKING_OFF, FAILED_TO_START, STOPPED = (
    "starting", "running", "backing-off", "failed-to-start", "stopped")
TICK_SECONDS = 0.1  # how often the supervisor looks at the functions
KNATIVE = "knative"


def replica_pid_file(pid_file: Path) -> Path:
    """Where the gateway of knative mode records the replicas it starts, beside the runner's pid file."""
    return pid_file.with_name("replicas.pids")


def _worker(name: str) -> str:
    return f"{name} (worker)"


@dataclass(frozen=True)
class Backoff:
    """How long to wait before starting a function again after its n-th exit in a row (n from 1)."""

    base: float = 0.5  # the delay before the second restart; the first is immediate
    cap: float = 30.0
    reset_after: float = 10.0  # a function up this long counts its exits from zero again

    def delay(self, exits: int) -> float:
        return 0.0 if exits <= 1 else min(self.cap, self.base * 2 ** (exits - 2))


@dataclass
class FunctionState:
    """What the supervisor knows of one function; served by the gateway at /_local/functions."""

    state: str = STARTING
    pid: int | None = None
    restarts: int = 0
    exits_in_a_row: int = 0
    last_exit_code: int | None = None
    last_error: str | None = None
    next_retry_at: float | None = None  # epoch seconds
    backoff_seconds: float = 0.0
    since: float = field(default_factory=time.time)  # epoch seconds of the last change of state
    served_once: bool = False
    workers_recorded: bool = False
    started: float = field(default_factory=time.monotonic)
    up_since: float | None = None

    def public(self) -> dict:
        return {"state": self.state, "pid": self.pid, "restarts": self.restarts,
                "exits_in_a_row": self.exits_in_a_row, "last_exit_code": self.last_exit_code,
                "last_error": self.last_error, "next_retry_at": self.next_retry_at,
                "backoff_seconds": self.backoff_seconds, "since": self.since}


@dataclass
class LocalShop:
    """The functions and the gateway, started from the route table with one set of settings."""

    settings: dict[str, str]
    gateway_port: int
    function_ports: dict[str, tuple[int, int]]  # route name -> (port, metrics port)
    routes: tuple[Route, ...] = ROUTES
    log_dir: Path | None = None
    relay_every: float | None = None  # seconds between PingSource-like ticks to the outbox relay
    backoff: Backoff = field(default_factory=Backoff)
    start_timeout: float = 60.0  # a function that does not listen by then is killed and counted as an exit
    state_file: Path | None = None  # default: functions.json in log_dir, or in a temporary directory
    pid_file: PidFile | None = None  # `make up` records every process it starts there
    scaling: str | None = None  # "knative": the gateway scales each function from zero (local/scaling/)
    functions: dict[str, Running] = field(default_factory=dict)
    states: dict[str, FunctionState] = field(default_factory=dict)
    gateway: subprocess.Popen | None = None
    # Re-entrant: restart() holds it while it starts a function, which writes the state file under it too.
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None
    _gateway_started: float = 0.0
    _gateway_exits: int = 0
    _gateway_retry_at: float | None = None
    _temporary_dir: Path | None = None

    @classmethod
    def on_free_ports(cls, settings: dict[str, str], log_dir: Path | None = None,
                      routes: tuple[Route, ...] = ROUTES, **options) -> LocalShop:
        """A shop whose gateway and functions take ports nothing else uses (tests, benchmarks)."""
        gateway_port, *ports = free_ports(1 + 2 * len(routes))
        pairs = {route.name: (ports[2 * index], ports[2 * index + 1]) for index, route in enumerate(routes)}
        return cls(settings, gateway_port, pairs, routes=routes, log_dir=log_dir, **options)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start(self, require_all: bool = True, cancelled: Callable[[], bool] | None = None) -> None:
        """Start every function and the gateway, and the supervisor that restarts functions that exit.

        Returns when every function serves; with `require_all=False` (make up), as soon as each one has either
        served or failed to start once: those keep being retried. `cancelled()` true gives up (Cancelled)."""
        # Each function finds the others the way a Knative Service would, by name: here through <NAME>_URL.
        peers = {url_variable(name): f"http://127.0.0.1:{port}" for name, (port, _) in self.function_ports.items()}
        # Orders publish to K_SINK: the gateway, playing the broker, delivers to the notify function (local.broker).
        sink = {"K_SINK": f"{self.url}{BROKER_PATH}"} if url_variable(PUBLISHED_TO) in peers else {}
        self.settings = {**peers, **sink, **self.settings}
        if self.state_file is None:
            if self.log_dir is None:
                self._temporary_dir = Path(tempfile.mkdtemp(prefix="local-shop-"))
            self.state_file = (self.log_dir or self._temporary_dir) / "functions.json"
        with self._lock:
            for route in self.routes if self.scaling != KNATIVE else ():
                self._spawn(route.name)
            self._write_state()  # in knative mode the gateway's replicas are at /_local/scaling instead
        self._start_gateway()
        wait_for_port(self.gateway_port, self.gateway, cancelled=cancelled)  # one that cannot start is fatal
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()
        self._wait_until_started(require_all, cancelled)
        if self.relay_every and "orders-outbox-relay" in self.function_ports:
            threading.Thread(target=self._tick_relay_forever, name="relay", daemon=True).start()

    def restart(self, name: str, timeout: float = 60.0) -> None:
        """Start a function again on its port now (after it died or was killed) and wait until it serves."""
        with self._lock:
            self._stop_function(name)
            self._spawn(name)
            self.states[name].restarts += 1
            self._write_state()
        self._wait_until(lambda: self.states[name].state == RUNNING, timeout, f"function {name} to serve again")

    def tick_relay(self) -> int:
        """Send the relay one PingSource-style CloudEvent; returns the HTTP status."""
        return self.ping("orders-outbox-relay")

    def ping(self, name: str, timeout: float = 60) -> int:
        """Send function `name` a ping as its PingSource would, sender token included; returns the HTTP status."""
        route = next(route for route in self.routes if route.name == name)
        return ping(self.service_url(name), sender_token(self.settings, route), timeout=timeout)

    def service_url(self, name: str) -> str:
        """Where function `name` answers: its process, or in knative mode the gateway's port for it."""
        return f"http://127.0.0.1:{self.function_ports[name][0]}"

    def stop(self) -> None:
        """Stop the supervisor first (so nothing is restarted), then every function and the gateway."""
        self._stopping.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join()
        with self._lock:
            processes = [running.process for running in self.functions.values()]
            stop(processes + ([self.gateway] if self.gateway else []))
            for name, running in self.functions.items():
                self._forget(running.process, name)
                self._set(name, STOPPED, next_retry_at=None)
            if self.gateway:
                self._forget(self.gateway)
            self._write_state()
        if self._temporary_dir is not None:
            shutil.rmtree(self._temporary_dir, ignore_errors=True)

    # The supervisor: one thread, one pass over the functions every tick, under the lock.

    def _supervise(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    for name in self.functions:
                        self._check(name)
                    self._check_gateway()
                except Exception:  # a bug here must not end the supervision of every function
                    log.exception("the supervisor failed a round; it goes on")

    def _check(self, name: str) -> None:
        running, state = self.functions[name], self.states[name]
        code = running.process.poll()
        if state.state in (STARTING, RUNNING) and code is not None:
            self._exited(name, code)
        elif state.state == STARTING:
            if is_listening("127.0.0.1", running.port):
                self._serving(name)
            elif time.monotonic() - state.started > self.start_timeout:
                log.warning("function %s did not listen on :%d within %.0fs; killing it", name, running.port,
                            self.start_timeout)
                stop([running.process])
                self._exited(name, running.process.returncode, f"did not listen within {self.start_timeout:.0f}s")
        elif state.state == RUNNING:
            if self.pid_file is not None and not state.workers_recorded:
                self._record_workers(name)
            if state.exits_in_a_row and time.monotonic() - state.up_since >= self.backoff.reset_after:
                state.exits_in_a_row = 0
                state.backoff_seconds = 0.0
                self._write_state()
        elif state.state in (BACKING_OFF, FAILED_TO_START) and time.time() >= state.next_retry_at:
            state.restarts += 1
            log.warning("restarting function %s (restart %d, exit %d in a row)", name, state.restarts,
                        state.exits_in_a_row)
            self._spawn(name)

    def _check_gateway(self) -> None:
        """The gateway too is started again when it exits, with the same backoff."""
        if self.gateway.poll() is None:
            return
        now = time.monotonic()
        if self._gateway_retry_at is None:
            sweep(self.gateway)
            self._forget(self.gateway)
            if now - self._gateway_started >= self.backoff.reset_after:
                self._gateway_exits = 0
            self._gateway_exits += 1
            delay = self.backoff.delay(self._gateway_exits)
            log.warning("the gateway exited with %s; starting it again %s", self.gateway.returncode,
                        f"in {delay:.1f}s" if delay else "now")
            self._gateway_retry_at = now + delay
        if now >= self._gateway_retry_at:
            self._gateway_retry_at = None
            self._start_gateway()

    def _serving(self, name: str) -> None:
        state = self.states[name]
        if state.restarts:
            log.warning("function %s serves again (pid %d, restart %d)", name, state.pid, state.restarts)
        state.served_once = True
        state.up_since = time.monotonic()
        state.workers_recorded = False
        self._set(name, RUNNING, last_error=None)

    def _record_workers(self, name: str) -> None:
        """Put the gunicorn worker in the pid file too: it outlives a master that is SIGKILLed. The master listens
        before it forks the worker, so this is looked for on the ticks after the function serves."""
        state = self.states[name]
        workers = descendants(state.pid)
        for pid in workers:
            self.pid_file.add(_worker(name), pid)
        state.workers_recorded = bool(workers)

    def _exited(self, name: str, code: int, reason: str | None = None) -> None:
        running, state = self.functions[name], self.states[name]
        sweep(running.process)  # a worker whose master was SIGKILLed must not keep the port
        self._forget(running.process, name)
        never_listened = state.state == STARTING
        state.exits_in_a_row += 1
        delay = self.backoff.delay(state.exits_in_a_row)
        error = reason or (f"exited with {code} before listening" if never_listened else f"exited with {code}")
        if never_listened:
            error += self._last_words(name)
        log.warning("function %s %s; starting it again %s (exit %d in a row)", name, error,
                    f"in {delay:.1f}s" if delay else "now", state.exits_in_a_row)
        self._set(name, FAILED_TO_START if never_listened else BACKING_OFF, last_exit_code=code, last_error=error,
                  next_retry_at=time.time() + delay, backoff_seconds=delay)

    def _last_words(self, name: str) -> str:
        """The last line the function wrote (its exception, when it could not start), or where to look."""
        if self.log_dir is None:
            return " (its output is above)"
        path = self.log_dir / f"{name}.log"
        try:
            with open(path, "rb") as handle:
                handle.seek(max(0, path.stat().st_size - 4096))
                lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
        except OSError:
            lines = []
        return (f": {lines[-1]}" if lines else "") + f" (see {path})"

    # Starting and forgetting processes, always under the lock.

    def _spawn(self, name: str) -> None:
        route = next(route for route in self.routes if route.name == name)
        port, metrics_port = self.function_ports[name]
        log_file = self._log(name)
        try:
            self.functions[name] = start_function(route, port, metrics_port, self.settings, log_file)
        finally:
            if log_file is not None:
                log_file.close()  # the child has its own copy
        pid = self.functions[name].process.pid
        if self.pid_file is not None:
            self.pid_file.add(name, pid)
        state = self.states.setdefault(name, FunctionState())
        state.started = time.monotonic()
        self._set(name, STARTING, pid=pid, next_retry_at=None)

    def _stop_function(self, name: str) -> None:
        process = self.functions[name].process
        stop([process])
        self._forget(process, name)

    def _forget(self, process: subprocess.Popen, name: str | None = None) -> None:
        if self.pid_file is not None:
            self.pid_file.discard(process.pid)
            if name is not None:
                self.pid_file.discard_name(_worker(name))

    def _start_gateway(self) -> None:
        upstreams = {name: running.url for name, running in self.functions.items()}
        subscriber = self.service_url(PUBLISHED_TO) if PUBLISHED_TO in self.function_ports else ""
        env = {**os.environ, **self.settings, **broker_environment(self.settings, subscriber),
               "GATEWAY_UPSTREAMS": json.dumps(upstreams),
               "LOCAL_STATE_FILE": str(self.state_file), "PORT": str(self.gateway_port), "HOST": "127.0.0.1",
               "SCALING": self.scaling or ""}  # this shop's mode, whatever the environment says
        if self.scaling == KNATIVE:
            env.update(GATEWAY_SERVICES=json.dumps({route.name: self.function_ports[route.name][0]
                                                    for route in self.routes}),
                       LOCAL_REPLICA_PIDS=str(replica_pid_file(self.pid_file.path)) if self.pid_file else "")
            if self.log_dir is not None:
                env["LOCAL_REPLICA_LOGS"] = str(self.log_dir)
        log_file = self._log("gateway")
        try:
            self.gateway = spawn([sys.executable, "-m", "local.gateway"], env, log_file)
        finally:
            if log_file is not None:
                log_file.close()
        self._gateway_started = time.monotonic()
        if self.pid_file is not None:
            self.pid_file.add("gateway", self.gateway.pid)

    def _set(self, name: str, new_state: str, **changes) -> None:
        state = self.states[name]
        for key, value in changes.items():
            setattr(state, key, value)
        if state.state != new_state:
            state.state, state.since = new_state, time.time()
        self._write_state()

    def _write_state(self) -> None:
        if self.state_file is None:
            return
        content = {"runner_pid": os.getpid(), "updated_at": time.time(),
                   "functions": {name: {"port": self.function_ports[name][0], **state.public()}
                                 for name, state in self.states.items()}}
        partial = self.state_file.with_suffix(".partial")
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(content, indent=1))
        os.replace(partial, self.state_file)  # the gateway never reads half a file

    # Waiting.

    def _wait_until_started(self, require_all: bool, cancelled: Callable[[], bool] | None) -> None:
        def started() -> bool:
            failed = [name for name, state in self.states.items()
                      if state.state == FAILED_TO_START and not state.served_once]
            if require_all and failed:
                raise RuntimeError(f"function {failed[0]} did not start: {self.states[failed[0]].last_error}")
            if require_all:
                return all(state.state == RUNNING for state in self.states.values())
            return all(state.served_once or state.exits_in_a_row for state in self.states.values())

        self._wait_until(started, self.start_timeout + 10, "the functions to start", cancelled)

    def _wait_until(self, condition: Callable[[], bool], timeout: float, what: str,
                    cancelled: Callable[[], bool] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if condition():
                    return
            if cancelled is not None and cancelled():
                raise Cancelled(f"stopped waiting for {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f}s for {what}")
            time.sleep(0.05)

    def _tick_relay_forever(self) -> None:
        """The PingSources: the orders relay and the catalog's reservation sweep, every `relay_every` seconds."""
        swept = [name for name in ("orders-outbox-relay", "catalog-expire-reservations") if name in self.function_ports]
        while not self._stopping.wait(self.relay_every):
            for name in swept:
                try:
                    self.ping(name)
                except httpx.HTTPError:
                    pass  # down or restarting; the next tick tries again

    def _log(self, name: str):
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{name}.log", "ab")
