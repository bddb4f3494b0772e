"""Start the shop's processes, as Knative would run them, so that none of them outlives whoever started it.

Every process starts in its own session (stopped as a group: a functions-framework process is a gunicorn master
and its worker) with PR_SET_PDEATHSIG set to SIGTERM, through ctypes, in the child before it runs the program.
Why this and not a parent-liveness pipe: the kernel delivers the signal however the parent dies, SIGKILL
included, and the child has nothing to do for it, whereas a pipe has to be watched by each child, and
functions-framework, uvicorn and SecantusDB are programs we do not change (it would take a wrapper process per
function). Why SIGTERM and not SIGKILL: a gunicorn master that is SIGKILLed leaves its worker running, holding the
port; one that gets SIGTERM stops its worker, and so do the gateway and SecantusDB stop cleanly.
The kernel sends the signal when the *thread* that forked the child ends, not the process: so every child is
forked by one spawner thread that lives as long as this process (a child started from a short-lived thread, such
as the supervisor's, would otherwise be killed as soon as that thread ended).
"""

from __future__ import annotations

import ctypes
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from local.environment import local_environment
from shared.routes import Route

ROOT = Path(__file__).resolve().parent.parent
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork: the child only calls it


@dataclass
class Running:
    name: str
    process: subprocess.Popen
    port: int
    metrics_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class _Spawner:
    """The one thread that forks every child, so that each child's parent-death signal is tied to this process."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def run(self, start: Callable[[], subprocess.Popen]) -> subprocess.Popen:
        with self._lock:
            if self._thread is None or self._thread.ident is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="spawner", daemon=True)
                self._thread.start()
        done: Future = Future()
        self._requests.put((start, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            start, done = self._requests.get()
            try:
                done.set_result(start())
            except BaseException as error:  # handed to the caller, who raises it
                done.set_exception(error)


_spawner = _Spawner()


def _die_with_parent(parent: int, signum: int) -> Callable[[], None]:
    def in_child() -> None:
        _prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl: nobody would signal us
            os._exit(1)

    return in_child


def die_with_parent() -> None:
    """This process, started by another program (a pytest-xdist worker), gets SIGTERM as soon as its parent dies,
    as the children `spawn` starts do."""
    _die_with_parent(os.getppid(), int(signal.SIGTERM))()


def spawn(command: list[str], env: dict[str, str] | None = None, log_file=None, cwd: Path = ROOT) -> subprocess.Popen:
    """Start `command` in its own session; it receives SIGTERM as soon as this process dies, however it dies."""
    guard = _die_with_parent(os.getpid(), int(signal.SIGTERM))
    return _spawner.run(lambda: subprocess.Popen(
        command, env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT if log_file is not None else None,
        start_new_session=True, preexec_fn=guard))


# Another environment's bin directory to start functions from (bench/runtime.py: one holding only what the image
# installs); by default this Python's.
FUNCTION_BIN_DIR = "SHOP_FUNCTION_BIN_DIR"


def function_command() -> list[str]:
    """The command line the container image runs; it reads FUNCTION_TARGET/SOURCE/SIGNATURE_TYPE from the env."""
    return [str(Path(os.environ.get(FUNCTION_BIN_DIR) or Path(sys.executable).parent) / "functions-framework")]


def function_env(route: Route, port: int, metrics_port: int | None, settings: dict[str, str],
                 workers: int = 1, threads: int = 8) -> dict[str, str]:
    """The function's variables (local.environment decides them, for every platform) and the process's own."""
    env = {**local_environment(route, settings, dict(os.environ)),
           "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": str(workers), "THREADS": str(threads),
           "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT),  # the sources, as the image's PYTHONPATH=/app
           "FUNCTION_USE_ASGI": "true"}  # as the image: no unused Flask app (Dockerfile)
    if metrics_port:
        env["METRICS_PORT"] = str(metrics_port)
        env["METRICS_ADDR"] = "127.0.0.1"
    return env


def start_function(route: Route, port: int, metrics_port: int | None, settings: dict[str, str],
                   log_file=None, extra: dict[str, str] | None = None) -> Running:
    """`extra`: variables given as they are, past local.environment's choice (the bench's library floors)."""
    process = spawn(function_command(), {**function_env(route, port, metrics_port, settings), **(extra or {})},
                    log_file)
    return Running(route.name, process, port, metrics_port)


class Cancelled(Exception):
    """A wait was given up because shutting down was asked for."""


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 30.0,
                  host: str = "127.0.0.1", cancelled: Callable[[], bool] | None = None) -> None:
    """Block until something accepts connections on `port`; fail early if `process` dies or `cancelled()`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode} before listening on {port}")
        if cancelled is not None and cancelled():
            raise Cancelled(f"stopped waiting for {host}:{port}")
        if is_listening(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def is_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    return free_ports(1)[0]


# Ports are chosen below the kernel's range for outgoing connections' local ports: a port from that range (what
# binding to port 0 gives) can be taken by any outgoing connection between choosing it and the server binding it,
# or while a server restarts on it. Seen: a warm shop's function restarted for 7 minutes, its port held by a
# long-lived store connection of another process.
LOWEST_PORT = 10000


def ephemeral_ports() -> range:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 65535  # Linux's default starts here, BSD's and macOS's higher
    return range(low, high + 1)


# Processes choosing ports at the same moment (the test workers) each get a slice of their own, "low-high": a
# port one has chosen but not yet bound is never chosen by another (tests/xdist_worker.py sets it).
PORT_RANGE = "SHOP_PORT_RANGE"


def chosen_port_range() -> range:
    """Where this process picks ports: its PORT_RANGE, else everything from LOWEST_PORT."""
    low, _, high = os.environ.get(PORT_RANGE, "").partition("-")
    return range(int(low), int(high) + 1) if high else range(LOWEST_PORT, 65536)


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports outside the ephemeral range, all held open until every one is chosen, so none
    is handed out twice."""
    ephemeral, allowed = ephemeral_ports(), chosen_port_range()
    outside = len(allowed) - len(range(max(ephemeral.start, allowed.start), min(ephemeral.stop, allowed.stop)))
    if outside < 1000:  # a host that gives nearly every port to outgoing connections
        return _kernel_chosen_ports(count)
    probes: dict[int, socket.socket] = {}
    try:
        attempts = 100 * count
        while len(probes) < count and attempts:
            attempts -= 1
            port = random.choice(allowed)
            if port in ephemeral or port in probes:
                continue
            probe = socket.socket()
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                probe.close()
                continue
            probes[port] = probe
        if len(probes) == count:
            return list(probes)
        raise RuntimeError(f"found {len(probes)} of {count} free ports outside the ephemeral range {ephemeral}")
    finally:
        for probe in probes.values():
            probe.close()


def _kernel_chosen_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def stop(processes: list[subprocess.Popen], grace: float = 5.0) -> None:
    """SIGTERM each process group, SIGKILL what is left after `grace` seconds: nothing of any group survives.
    A process that had already exited is not signalled (its pid may be another process's by now)."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            signal_group(process, signal.SIGKILL)
            process.wait()
        sweep(process)


def sweep(process: subprocess.Popen) -> None:
    """SIGKILL what is left of the group of a process that has exited: a gunicorn worker whose master was
    SIGKILLed keeps serving and holding the port. Call it right after the exit is seen: the group's id cannot be
    handed to another process while any member lives, and a pid is not reused within moments of its exit."""
    signal_group(process, signal.SIGKILL)


def signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
