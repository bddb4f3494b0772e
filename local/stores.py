"""Bring up (or find) the stores the local shop and the tests use: MongoDB-protocol server, PostgreSQL, Redis."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from local.processes import is_listening, spawn, stop, wait_for_port
from shared.postgres import connect


class StoreMissing(RuntimeError):
    """A store is not reachable and cannot be started here; the message says what to do."""


def start_mongo(port: int, storage_path: str, log_file=None,
                cancelled: Callable[[], bool] | None = None, test_commands: bool = False) -> subprocess.Popen:
    """Start SecantusDB (a MongoDB-wire-compatible dev/test server) and wait until it answers `ping`;
    `test_commands` enables mongod's test-only commands (configureFailPoint).

    Like every process started through local.processes, it stops on its own when its starter dies."""
    server = Path(sys.executable).parent / "secantusd-py"
    if not server.exists():
        raise StoreMissing("SecantusDB is not installed in this environment: run `make install` "
                           "(or set MONGODB_URL to a running MongoDB)")
    if storage_path != ":memory:":
        Path(storage_path).mkdir(parents=True, exist_ok=True)
    process = spawn([str(server), "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage_path,
                     *(["--enable-test-commands"] if test_commands else [])], log_file=log_file or subprocess.DEVNULL)
    try:
        wait_for_port(port, process, timeout=30, cancelled=cancelled)
        _wait_for_ping(f"mongodb://127.0.0.1:{port}", process)
    except BaseException:
        stop([process])
        raise
    return process


def _wait_for_ping(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    deadline = time.monotonic() + timeout
    with MongoClient(url, serverSelectionTimeoutMS=500) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StoreMissing(f"the MongoDB-protocol server exited with {process.returncode}")
            try:
                client.admin.command("ping")
                return
            except PyMongoError:
                time.sleep(0.1)
    raise StoreMissing(f"the MongoDB-protocol server at {url} did not answer ping in {timeout:.0f}s")


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def ensure_redis(url: str) -> None:
    """Redis answers at `url`, or is started here when it is local and installed, or the caller is told what to do."""
    host, port = _host_port(url, 6379)
    if is_listening(host, port):
        return
    if host in ("127.0.0.1", "localhost") and shutil.which("redis-server"):
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port),
                        "--save", "", "--appendonly", "no"], check=True, stdout=subprocess.DEVNULL)
        wait_for_port(port, timeout=10, host=host)
        return
    raise StoreMissing(f"Redis does not answer at {host}:{port}. Install it (Debian: `apt-get install redis-server`) "
                       "or set REDIS_URL to a running Redis.")


def delete_keys(url: str, pattern: str) -> None:
    """Delete the Redis keys matching `pattern` (a test or benchmark session's prefix), in batches."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])
    finally:
        client.close()


def ensure_postgres(url: str) -> None:
    """PostgreSQL answers at `url` (starting the local cluster if installed) and the database exists."""
    host, port = _host_port(url, 5432)
    if not is_listening(host, port):
        clusters = Path("/etc/postgresql")
        if host in ("127.0.0.1", "localhost") and shutil.which("pg_ctlcluster") and clusters.is_dir():
            version = sorted(p.name for p in clusters.iterdir())[-1]
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
            wait_for_port(port, timeout=20, host=host)
        else:
            raise StoreMissing(f"PostgreSQL does not answer at {host}:{port}. Install it (Debian: `apt-get install "
                               "postgresql`) or set DATABASE_URL to a running PostgreSQL.")
    create_database(url)


def create_database(url: str) -> None:
    """Create the database named in `url` when it does not exist yet."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "postgres"
    admin = urlunsplit(parts._replace(path="/postgres"))
    connection = connect(admin, timeout=5)
    try:
        if not connection.run("SELECT 1 FROM pg_database WHERE datname = :name", name=name):
            connection.run(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def drop_database(url: str, timeout: float = 5) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    connection = connect(urlunsplit(parts._replace(path="/postgres")), timeout=timeout)
    try:
        connection.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()
