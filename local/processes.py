"""Start endpoint functions as their own functions-framework processes, as Knative would run them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from shared.routes import Route

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Running:
    name: str
    process: subprocess.Popen
    port: int
    metrics_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def function_command() -> list[str]:
    """The command line the container image runs; it reads FUNCTION_TARGET/SOURCE/SIGNATURE_TYPE from the env."""
    return [str(Path(sys.executable).parent / "functions-framework")]


def function_env(route: Route, port: int, metrics_port: int | None, settings: dict[str, str],
                 workers: int = 1, threads: int = 8) -> dict[str, str]:
    env = {**os.environ, **settings,
           "FUNCTION_TARGET": route.target, "FUNCTION_SOURCE": str(ROOT / route.source),
           "FUNCTION_SIGNATURE_TYPE": route.signature, "K_SERVICE": route.name,
           "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": str(workers), "THREADS": str(threads),
           "PYTHONUNBUFFERED": "1"}
    if metrics_port:
        env["METRICS_PORT"] = str(metrics_port)
        env["METRICS_ADDR"] = "127.0.0.1"
    return env


def start_function(route: Route, port: int, metrics_port: int | None, settings: dict[str, str],
                   log_file=None) -> Running:
    process = subprocess.Popen(function_command(), env=function_env(route, port, metrics_port, settings),
                               cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT if log_file else None,
                               start_new_session=True)
    return Running(route.name, process, port, metrics_port)


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 30.0,
                  host: str = "127.0.0.1") -> None:
    """Block until something accepts connections on `port`; fail early if `process` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
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


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: all held open until every one is chosen, so none is handed out twice."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def stop(processes: list[subprocess.Popen], grace: float = 5.0) -> None:
    """SIGTERM each process group, then SIGKILL what is left after `grace` seconds."""
    for process in processes:
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
