"""PostgreSQL through pg8000: a small per-process connection pool, transactions, and versioned migrations.

pg8000 is synchronous and its connections are not thread-safe: each unit of work borrows one connection,
and async functions run that work in a thread (`await in_transaction(work)`) so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import queue
import ssl
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import pg8000.native
from pg8000.exceptions import InterfaceError

from shared.errors import register_unavailable
from shared.logs import logger
from shared.settings import PostgresSettings, settings

register_unavailable(InterfaceError)

T = TypeVar("T")
Connection = pg8000.native.Connection
_log = logger("postgres")
POOL_SIZE = 8


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    # Built once: pg8000 would otherwise build a new context (~50 ms) on every connect.
    return ssl.create_default_context()


def connect(url: str, timeout: float) -> Connection:
    parts = urlsplit(url)
    sslmode = parse_qs(parts.query).get("sslmode", ["disable"])[0]
    return pg8000.native.Connection(
        user=unquote(parts.username or "postgres"), password=unquote(parts.password) if parts.password else None,
        host=parts.hostname or "127.0.0.1", port=parts.port or 5432, database=parts.path.lstrip("/") or None,
        ssl_context=False if sslmode in ("disable", "allow", "prefer") else _tls_context(),
        timeout=timeout, application_name="shop")


class Pool:
    """Idle connections reused across requests; a broken one is dropped instead of returned."""

    def __init__(self, url: str, timeout: float, size: int = POOL_SIZE):
        self.url, self.timeout = url, timeout
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue(maxsize=size)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        try:
            connection = self._idle.get_nowait()
        except queue.Empty:
            connection = connect(self.url, self.timeout)
        healthy = True
        try:
            yield connection
        except InterfaceError:
            healthy = False
            raise
        finally:
            if healthy and _is_idle(connection):
                try:
                    self._idle.put_nowait(connection)
                except queue.Full:
                    connection.close()
            else:
                _close_quietly(connection)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.connection() as connection:
            connection.run("BEGIN")
            try:
                yield connection
            except BaseException:
                _rollback_quietly(connection)
                raise
            connection.run("COMMIT")


def _is_idle(connection: Connection) -> bool:
    # pg8000 keeps the server's ReadyForQuery status here; only a connection outside a transaction is reusable.
    return connection._transaction_status == b"I"


def _close_quietly(connection: Connection) -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - already broken
        pass


def _rollback_quietly(connection: Connection) -> None:
    try:
        connection.run("ROLLBACK")
    except InterfaceError:
        pass


_pool: Pool | None = None
_pool_lock = threading.Lock()
_migrated: set[str] = set()


def pool() -> Pool:
    """The process's pool, with every domain's migrations applied on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            config = settings(PostgresSettings)
            candidate = Pool(config.database_url, config.database_timeout_seconds)
            migrate(candidate)
            _pool = candidate
    return _pool


async def in_transaction(work: Callable[[Connection], T]) -> T:
    """Run `work(connection)` in one transaction on a worker thread."""
    def run() -> T:
        with pool().transaction() as connection:
            return work(connection)

    return await asyncio.to_thread(run)


FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"


def migrations() -> list[tuple[str, Path]]:
    """Every domain's versioned SQL files, `functions/<domain>/migrations/NNNN_name.sql`, as (version, path)."""
    return sorted((f"{path.parent.parent.name}/{path.stem}", path) for path in FUNCTIONS.glob("*/migrations/*.sql"))


def migrate(target: Pool) -> list[str]:
    """Apply the migrations this database has not seen yet, each domain's in version order.

    Idempotent and safe to run from many processes at once: an advisory lock serialises them.
    """
    applied_now = []
    with target.transaction() as connection:
        connection.run("SELECT pg_advisory_xact_lock(727274)")
        connection.run("CREATE TABLE IF NOT EXISTS schema_migrations ("
                       "version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        done = {row[0] for row in connection.run("SELECT version FROM schema_migrations")}
        for version, path in migrations():
            if version in done:
                continue
            connection.execute_simple(path.read_text())
            connection.run("INSERT INTO schema_migrations (version) VALUES (:version)", version=version)
            applied_now.append(version)
    if applied_now:
        _log.info("migrations applied", extra={"versions": applied_now})
    return applied_now
