"""`make up`'s runner: what it says when a store is missing, and that it never leaves a process behind — however it
is stopped, even SIGKILLed — nor kills one it did not start."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from local import pids
from local.processes import ROOT, chosen_port_range, ephemeral_ports, spawn, start_function, stop, wait_for_port
from shared.routes import ROUTES, route
from tests.support import CARD_FINGERPRINT_KEY, RUN_ID, USER_TOKEN_SETTINGS

FUNCTION = "catalog-get-product"


def run_local(tmp_path: Path, *arguments: str, **settings: str) -> subprocess.CompletedProcess:
    base = free_port_block(2 * len(ROUTES) + 1)
    env = {**os.environ, "LOCAL_DIR": str(tmp_path / "local"), "GATEWAY_PORT": str(base + 2 * len(ROUTES)),
           "FUNCTION_BASE_PORT": str(base), "METRICS_BASE_PORT": str(base + len(ROUTES)), **settings}
    return subprocess.run([sys.executable, "-m", "local.run", *arguments], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_an_unreachable_redis_is_named_with_what_to_do(mongo_url, tmp_path):
    result = run_local(tmp_path, MONGODB_URL=mongo_url, REDIS_URL="redis://127.0.0.2:1/0")

    assert result.returncode == 1
    assert "Redis does not answer at 127.0.0.2:1" in result.stderr
    assert "REDIS_URL" in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_an_unreachable_postgres_is_named_with_what_to_do(mongo_url, redis_url, tmp_path):
    result = run_local(tmp_path, MONGODB_URL=mongo_url, REDIS_URL=redis_url,
                       DATABASE_URL="postgresql://postgres@127.0.0.2:1/x")

    assert result.returncode == 1
    assert "PostgreSQL does not answer at 127.0.0.2:1" in result.stderr
    assert "DATABASE_URL" in result.stderr and "Traceback" not in result.stderr + result.stdout


# A runner of our own: one function, ports of its own, files under tmp_path, the session's stores.

def free_port_block(count: int) -> int:
    """The first of `count` consecutive free ports (the runner numbers its ports from a base), below the range
    the kernel hands out for outgoing connections."""
    allowed = chosen_port_range()  # this test worker's own, below the ephemeral range
    high = min(allowed.stop, ephemeral_ports().start)
    for _ in range(100):
        base = random.randrange(allowed.start, high - count)
        probes = []
        try:
            for port in range(base, base + count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError(f"no {count} consecutive free ports")


@dataclass
class Runner:
    process: subprocess.Popen
    local_dir: Path
    gateway_url: str
    function_port: int
    output: Path

    @property
    def text(self) -> str:
        return self.output.read_text(errors="replace")

    @property
    def pid_file(self) -> Path:
        return self.local_dir / "run" / "shop.pids"

    def functions(self) -> dict:
        return httpx.get(f"{self.gateway_url}/_local/functions", timeout=5).json()["functions"]

    def wait_until_up(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the runner exited with {self.process.returncode}:\n{self.text}"
            try:
                if all(state["state"] == "running" for state in self.functions().values()):
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass  # not up yet, or an earlier run's process still holds the port
            time.sleep(0.1)
        raise AssertionError(f"the runner did not come up in {timeout}s:\n{self.text}")

    def processes(self) -> list[pids.Recorded]:
        """The runner's whole tree (functions, their gunicorn workers, the gateway, SecantusDB), with start times."""
        return tree(self.process.pid)


def tree(pid: int) -> list[pids.Recorded]:
    """The processes below `pid`, each named by its command line."""
    found = []
    for child in pids.descendants(pid):
        started = pids.start_time(child)
        if started is not None:
            found.append(pids.Recorded(pids.command_line(child), child, started))
    return found


def left_alive(processes: list[pids.Recorded], within: float = 0.0) -> list[pids.Recorded]:
    deadline = time.monotonic() + within
    while True:
        alive = [process for process in processes if process.is_alive()]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


@pytest.fixture
def runner_settings(tmp_path, mongo_url, redis_url, postgres_url):
    """The environment of a runner started by a test; its Mongo database is dropped afterwards."""
    base = free_port_block(2 * len(ROUTES) + 2)
    database = f"runner_{RUN_ID}_{tmp_path.name[-12:]}".replace("-", "_")
    env = {**os.environ, "LOCAL_DIR": str(tmp_path / "local"), "LOCAL_FUNCTIONS": FUNCTION,
           "GATEWAY_PORT": str(base + 2 * len(ROUTES)), "MONGO_PORT": str(base + 2 * len(ROUTES) + 1),
           "FUNCTION_BASE_PORT": str(base), "METRICS_BASE_PORT": str(base + len(ROUTES)),
           "MONGODB_URL": mongo_url, "MONGODB_DATABASE": database, "REDIS_URL": redis_url,
           "REDIS_KEY_PREFIX": f"test:{RUN_ID}:runner:", "DATABASE_URL": postgres_url,
           **USER_TOKEN_SETTINGS, "CARD_FINGERPRINT_KEY": CARD_FINGERPRINT_KEY}
    yield env
    if not os.environ.get("MONGODB_URL"):
        return  # the session's own server, gone with the session
    from pymongo import MongoClient

    with MongoClient(mongo_url, serverSelectionTimeoutMS=2000) as client:
        client.drop_database(database)


@pytest.fixture
def start_runner(runner_settings, tmp_path):
    """Start `python -m local.run` (what `make up` runs); whatever it started is stopped after the test."""
    started: list[subprocess.Popen] = []

    def start(*arguments: str, **settings: str) -> Runner:
        env = {**runner_settings, **settings}
        env = {key: value for key, value in env.items() if value is not None}
        output = tmp_path / f"runner-{len(started)}.log"
        with open(output, "ab") as log_file:
            process = spawn([sys.executable, "-m", "local.run", *arguments], env, log_file)
        runner = Runner(process, Path(env["LOCAL_DIR"]), f"http://127.0.0.1:{env['GATEWAY_PORT']}",
                        int(env["FUNCTION_BASE_PORT"]), output)
        started.append(process)
        return runner

    yield start
    for process in started:
        below = tree(process.pid) if process.poll() is None else []
        stop([process], grace=15)
        pids.terminate(left_alive(below, within=5))


def test_two_sigterms_50ms_apart_during_shutdown_leave_no_process(start_runner):
    runner = start_runner()
    runner.wait_until_up()
    started = runner.processes()

    runner.process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    runner.process.send_signal(signal.SIGTERM)

    assert runner.process.wait(timeout=60) == 0, runner.text
    assert "already stopping the shop; SIGTERM ignored" in runner.text
    assert "Traceback" not in runner.text
    assert any("functions-framework" in process.name for process in started)
    assert any("local.gateway" in process.name for process in started)
    assert left_alive(started) == []
    assert not runner.pid_file.exists()


def test_a_sigkilled_runner_leaves_no_process_after_5_seconds(start_runner):
    runner = start_runner(MONGODB_URL=None)  # so the runner starts its own SecantusDB as well
    runner.wait_until_up()
    started = runner.processes()
    assert any("secantusd" in process.name for process in started), runner.text

    runner.process.kill()

    assert left_alive(started, within=5) == []


def test_a_stale_pid_file_with_a_recycled_pid_kills_nothing(start_runner, runner_settings):
    gateway_port = int(runner_settings["GATEWAY_PORT"])
    # Not ours: a process that got a pid an earlier run recorded, and that now holds the shop's gateway port.
    stranger = spawn([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(gateway_port)],
                     log_file=subprocess.DEVNULL)
    try:
        wait_for_port(gateway_port, stranger)
        recorded_start = pids.start_time(stranger.pid) - 100  # the earlier process with this pid started before
        pid_file = Path(runner_settings["LOCAL_DIR"]) / "run" / "shop.pids"
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(json.dumps({"boot_id": pids.boot_id(), "processes": [
            {"name": "runner", "pid": stranger.pid, "start_time": recorded_start},
            {"name": "gateway", "pid": stranger.pid, "start_time": recorded_start}]}))

        down = start_runner("down")
        assert down.process.wait(timeout=30) == 0, down.text
        pid_file.write_text(json.dumps({"boot_id": pids.boot_id(), "processes": [
            {"name": "gateway", "pid": stranger.pid, "start_time": recorded_start}]}))
        up = start_runner()
        assert up.process.wait(timeout=30) == 1, up.text

        assert stranger.poll() is None
        assert f"pid {stranger.pid} was gateway in an earlier run; it is now another process" in down.text
        assert "no shop of this checkout is running" in down.text
        assert f"port {gateway_port} is in use by pid {stranger.pid}" in up.text
        assert "http.server" in up.text and "left alone" in up.text
    finally:
        stop([stranger])


def test_make_up_after_an_orphaned_run_starts_normally(start_runner, runner_settings):
    # What a runner that died without its processes stopping would leave: its pid file and a function and a
    # gateway still holding the ports.
    function_port, gateway_port = int(runner_settings["FUNCTION_BASE_PORT"]), int(runner_settings["GATEWAY_PORT"])
    dead_runner = spawn(["sleep", "60"])
    dead_runner_start = pids.start_time(dead_runner.pid)
    stop([dead_runner])
    orphan = start_function(route(FUNCTION), function_port, None, runner_settings, subprocess.DEVNULL).process
    orphan_gateway = spawn([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(gateway_port)],
                           log_file=subprocess.DEVNULL)
    try:
        wait_for_port(function_port, orphan)
        wait_for_port(gateway_port, orphan_gateway)
        pid_file = Path(runner_settings["LOCAL_DIR"]) / "run" / "shop.pids"
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(json.dumps({"boot_id": pids.boot_id(), "processes": [
            {"name": "runner", "pid": dead_runner.pid, "start_time": dead_runner_start},
            {"name": FUNCTION, "pid": orphan.pid, "start_time": pids.start_time(orphan.pid)},
            {"name": "gateway", "pid": orphan_gateway.pid, "start_time": pids.start_time(orphan_gateway.pid)}]}))

        runner = start_runner()
        runner.wait_until_up()
        product = httpx.get(f"{runner.gateway_url}/products/{'a' * 24}", timeout=10)

        orphan.wait(timeout=10)  # stopped by the new run (TimeoutExpired otherwise)
        orphan_gateway.wait(timeout=10)
        assert "left 2 processes running; stopping them" in runner.text
        assert f"pid {orphan.pid}" in runner.text and f"pid {orphan_gateway.pid}" in runner.text
        assert product.status_code == 404  # served by the new run's function, through its gateway
    finally:
        stop([orphan, orphan_gateway])


def test_make_down_stops_a_running_shop(start_runner):
    runner = start_runner()
    runner.wait_until_up()
    started = runner.processes()

    down = start_runner("down")

    assert down.process.wait(timeout=60) == 0, down.text
    assert runner.process.wait(timeout=10) == 0, runner.text
    assert f"stopping the shop (runner pid {runner.process.pid})" in down.text
    assert left_alive(started) == []


def test_a_second_make_up_is_told_the_shop_runs(start_runner):
    runner = start_runner()
    runner.wait_until_up()

    second = start_runner()

    assert second.process.wait(timeout=30) == 1
    assert f"already running (runner pid {runner.process.pid}); `make down` stops it" in second.text
    assert runner.process.poll() is None
