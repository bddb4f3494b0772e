"""Store servers a test starts for itself on free ports, in a temporary directory, stopped after: a 3-primary Redis
Cluster and a PgBouncer in front of the local PostgreSQL. Started through local.processes, so none outlives the
test process however it dies."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from local.processes import free_ports, spawn, stop, wait_for_port
from shared.settings import PostgresSettings

# What the test shops' functions give up after (they run the default): PgBouncer's statement_timeout is the same.
TEST_DATABASE_TIMEOUT_SECONDS = PostgresSettings.model_fields["database_timeout_seconds"].default


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


@dataclass
class PgBouncer:
    port: int
    process: subprocess.Popen
    log: Path

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"


@contextmanager
def pgbouncer(log_dir: Path, postgres_host: str, postgres_port: int, pool_size: int) -> Iterator[PgBouncer]:
    """Debian's pgbouncer with the generated settings, in front of the local PostgreSQL (trust authentication, any
    database), with `pool_size` server connections per database. As root it runs as `postgres` (it refuses root),
    through setpriv, which keeps the parent-death signal that the change of user would clear; its files are then in
    a directory of their own that `postgres` can read (a pytest temporary directory is not)."""
    from local.deploy.pgbouncer import ini

    if not (shutil.which("pgbouncer") or Path("/usr/sbin/pgbouncer").exists()):
        raise RuntimeError("pgbouncer is needed (Debian: apt-get install pgbouncer; `make test` installs it)")
    port = free_ports(1)[0]
    with tempfile.TemporaryDirectory(prefix="shop-pgbouncer-") as config_dir:
        directory = Path(config_dir)
        (directory / "userlist.txt").write_text('"postgres" ""\n')
        (directory / "pgbouncer.ini").write_text(ini(
            {"*": f"host={postgres_host} port={postgres_port}"}, timeout_seconds=TEST_DATABASE_TIMEOUT_SECONDS,
            listen_addr="127.0.0.1", listen_port=port,
            auth_type="trust", auth_file=str(directory / "userlist.txt"), default_pool_size=pool_size,
            reserve_pool_size=0, max_db_connections=pool_size, max_client_conn=500, admin_users="postgres"))
        command = [shutil.which("pgbouncer") or "/usr/sbin/pgbouncer", str(directory / "pgbouncer.ini")]
        if os.geteuid() == 0:
            directory.chmod(0o755)
            command = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--pdeathsig=keep",
                       *command]
        log = log_dir / "pgbouncer.log"
        with open(log, "ab") as output:
            process = spawn(command, log_file=output)
        try:
            wait_for_port(port, process, timeout=20)
            yield PgBouncer(port, process, log)
        finally:
            stop([process])
