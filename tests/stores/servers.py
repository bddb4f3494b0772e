"""Store servers a test starts for itself on free ports, in a temporary directory, stopped after: a 3-primary Redis
Cluster and a PgBouncer in front of the local PostgreSQL. Started through local.processes, so none outlives the
test process however it dies."""

from __future__ import annotations

import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from local.processes import free_ports, spawn, stop, wait_for_port


@dataclass
class RedisCluster:
    ports: list[int]
    processes: list[subprocess.Popen]

    @property
    def url(self) -> str:
        """A startup node; the client discovers the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"


def _redis_node(port: int, bus_port: int, directory: Path, log) -> subprocess.Popen:
    directory.mkdir()
    # An explicit bus port: the default (port + 10000) may be taken, or past 65535.
    return spawn(["redis-server", "--port", str(port), "--cluster-port", str(bus_port), "--bind", "127.0.0.1",
                  "--cluster-enabled", "yes",
                  "--cluster-config-file", str(directory / "nodes.conf"), "--cluster-node-timeout", "2000",
                  "--dir", str(directory), "--save", "", "--appendonly", "no"], log_file=log)


@contextmanager
def redis_cluster(directory: Path, primaries: int = 3) -> Iterator[RedisCluster]:
    """`primaries` redis-server processes in cluster mode, joined by `redis-cli --cluster create` (no replicas)."""
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        raise RuntimeError("redis-server and redis-cli are needed (Debian: apt-get install redis-server)")
    ports = free_ports(2 * primaries)
    ports, bus_ports = ports[:primaries], ports[primaries:]
    with open(directory / "redis-cluster.log", "ab") as log:
        processes = [_redis_node(port, bus, directory / str(port), log) for port, bus in zip(ports, bus_ports)]
    try:
        for port, process in zip(ports, processes):
            wait_for_port(port, process, timeout=20)
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{port}" for port in ports),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        wait_for_cluster_state(ports, "ok")
        yield RedisCluster(ports, processes)
    finally:
        stop(processes)


def wait_for_cluster_state(ports: list[int], state: str, attempts: int = 200) -> None:
    """Every node on `ports` reports `cluster_state:<state>` (ok, or fail once a primary is missed)."""
    for _ in range(attempts):
        infos = [subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True,
                                text=True).stdout for port in ports]
        if all(f"cluster_state:{state}" in info for info in infos):
            return
        time.sleep(0.05)
    raise TimeoutError(f"the Redis Cluster on {ports} did not reach cluster_state:{state}")
