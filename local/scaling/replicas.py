"""One replica of a function: a functions-framework process on ports nothing else uses.

Started through local.processes (its own session, PR_SET_PDEATHSIG: it dies with the gateway, however the gateway
dies); ready when it listens, as the activator probes a new pod; stopped gracefully: no new request, the ones in
flight finish (bounded by the drain time), then SIGTERM to its group and SIGKILL after a grace.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from local.pids import PidFile, descendants
from local.processes import Running, free_ports, start_function, stop
from shared.routes import Route

STARTING, READY, DRAINING, STOPPED = "starting", "ready", "draining", "stopped"
PROBE_SECONDS = 0.05


@dataclass(eq=False)
class Replica:
    name: str
    running: Running
    state: str = STARTING
    in_flight: int = 0
    spawned_at: float = field(default_factory=time.monotonic)
    ready_at: float | None = None
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def pid(self) -> int:
        return self.running.process.pid

    @property
    def exited(self) -> bool:
        return self.running.process.poll() is not None

    def public(self) -> dict:
        return {"pid": self.pid, "port": self.running.port, "metrics_port": self.running.metrics_port,
                "state": self.state, "in_flight": self.in_flight,
                "cold_start_seconds": round(self.ready_at - self.spawned_at, 3) if self.ready_at else None}


async def spawn(route: Route, log_dir: Path | None, pid_file: PidFile | None) -> Replica:
    """Start a replica; it is not ready yet (see `ready`)."""
    port, metrics_port = free_ports(2)
    log_file = _log(log_dir, route.name)
    try:
        # The fork happens on local.processes' spawner thread, never on the event loop. The shop's settings are
        # the gateway's environment: the peers' addresses (this gateway's ports for them), K_SINK, the run's keys.
        running = await asyncio.to_thread(start_function, route, port, metrics_port, dict(os.environ), log_file)
    finally:
        if log_file is not None:
            log_file.close()
    if pid_file is not None:
        pid_file.add(route.name, running.process.pid)
    return Replica(route.name, running)


async def ready(replica: Replica, timeout: float) -> bool:
    """Probe until the replica accepts connections; False when it exits or the timeout passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not replica.exited and replica.state == STARTING:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", replica.running.port)
        except OSError:
            await asyncio.sleep(PROBE_SECONDS)
            continue
        writer.close()
        return True
    return False


def record_workers(replica: Replica, pid_file: PidFile | None) -> None:
    """The gunicorn worker outlives a master that is SIGKILLed: `make down` must find it too."""
    if pid_file is not None:
        for pid in descendants(replica.pid):
            pid_file.add(_worker(replica), pid)


async def terminate(replica: Replica, drain: float, pid_file: PidFile | None) -> None:
    """Wait for the replica's requests in flight (at most `drain` seconds), then stop its process group."""
    if replica.in_flight:
        try:
            await asyncio.wait_for(replica.idle.wait(), drain)
        except TimeoutError:
            pass
    await asyncio.to_thread(stop, [replica.running.process])
    replica.state = STOPPED
    if pid_file is not None:
        pid_file.discard(replica.pid)
        pid_file.discard_name(_worker(replica))


def _worker(replica: Replica) -> str:
    return f"{replica.name} (worker of {replica.pid})"


def _log(log_dir: Path | None, name: str):
    if log_dir is None:
        return None
    log_dir.mkdir(parents=True, exist_ok=True)
    return open(log_dir / f"{name}.log", "ab")
