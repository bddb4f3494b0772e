"""PostgreSQL through pg8000: a bounded per-process connection pool, transactions, and versioned migrations.

pg8000 is synchronous and its connections are not thread-safe: each unit of work borrows one connection,
and async functions run that work in a thread (`await in_transaction(work)`) so the event loop never blocks.
A process opens at most DATABASE_MAX_CONNECTIONS connections; a request that cannot get one within
DATABASE_ACQUIRE_TIMEOUT_SECONDS, or that the server refuses ("too many clients"), answers 503 with Retry-After.

Behind PgBouncer in transaction pooling (DATABASE_POOLER=transaction) a client connection keeps no session state:
the server connection under it may change after every transaction, or after every statement outside one. So no
named prepared statements (PooledConnection); nothing else here keeps any (no SET, LISTEN, temporary tables or
session advisory locks: migrations take a transaction-scoped one).
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import pg8000.native
from pg8000.core import (BIND, DESCRIBE, EXECUTE_MSG, NULL_BYTE, PARSE, PORTAL, SYNC_MSG, Context, H_pack, _flush,
                         _write, i_pack, make_params)
from pg8000.exceptions import DatabaseError, InterfaceError
from pg8000.native import to_statement

from shared.errors import ServiceUnavailable, register_unavailable
from shared.logs import logger
from shared.loop_local import per_event_loop
from shared.schema import SchemaBehind, missing_migrations
from shared.settings import PostgresSettings, settings

register_unavailable(InterfaceError)

T = TypeVar("T")
_PREPARED_PER_CONNECTION = 256
_STALE_PLAN = "0A000"  # "cached plan must not change result type": the schema changed under a prepared statement


class Connection(pg8000.native.Connection):
    """A pg8000 connection whose parametrised statements are prepared once and then run by name.

    pg8000's `run` with parameters parses, describes and executes an unnamed statement each time: three round
    trips and a Python pass over the SQL text. A prepared statement runs in one round trip.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prepared: dict[str, pg8000.native.PreparedStatement] = {}

    def run(self, sql, stream=None, types=None, **params):
        if not params or stream is not None or types is not None:
            return super().run(sql, stream=stream, types=types, **params)
        try:
            return self._prepared_statement(sql).run(**params)
        except DatabaseError as error:
            if _sqlstate(error) != _STALE_PLAN or self._transaction_status != b"I":
                raise
            self._forget_prepared()  # a migration changed a table: prepare again, once (outside a transaction)
            return self._prepared_statement(sql).run(**params)

    def _prepared_statement(self, sql: str) -> pg8000.native.PreparedStatement:
        statement = self._prepared.get(sql)
        if statement is None:
            if len(self._prepared) >= _PREPARED_PER_CONNECTION:
                self._forget_prepared()
            statement = self._prepared[sql] = self.prepare(sql)
        return statement

    def _forget_prepared(self) -> None:
        for statement in self._prepared.values():
            statement.close()
        self._prepared.clear()


class PooledConnection(pg8000.native.Connection):
    """A pg8000 connection for a transaction-pooling PgBouncer: each parametrised statement is sent whole, as an
    unnamed statement with a single Sync (Parse, Bind, Describe, Execute), so one server connection runs all of it.

    pg8000's own unnamed path syncs three times (three round trips), and PgBouncer may hand each part to another
    server connection outside a transaction ("unnamed prepared statement does not exist"); named statements would
    be missing on the next server connection. This path is one round trip; the server parses and plans each time.
    The Parse message and the parsed row descriptions are kept per statement text, as a prepared statement would.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._descriptions: dict[bytes, tuple[list, list]] = {}

    def run(self, sql, stream=None, types=None, **params):
        if not params or stream is not None or types is not None:
            return super().run(sql, stream=stream, types=types, **params)  # unparametrised: one simple Query
        statement, make_values, parse = _statement(sql, self._client_encoding)
        context = Context(statement)
        _write(self._sock, parse + _bind(make_params(self.py_types, make_values(params)), self._client_encoding)
               + _DESCRIBE_EXECUTE_SYNC)
        _flush(self._sock)
        self.handle_messages(context)
        self._context = context
        return context.rows

    def handle_ROW_DESCRIPTION(self, data, context):
        known = self._descriptions.get(data)
        if known is None:
            super().handle_ROW_DESCRIPTION(data, context)
            if len(self._descriptions) < _PREPARED_PER_CONNECTION:
                self._descriptions[bytes(data)] = (context.columns, context.input_funcs)
        else:
            context.columns, context.input_funcs = known
            if context.rows is None:
                context.rows = []


def _message(code: bytes, body: bytes) -> bytes:
    return code + i_pack(len(body) + 4) + body


_DESCRIBE_EXECUTE_SYNC = _message(DESCRIBE, PORTAL + NULL_BYTE) + EXECUTE_MSG + SYNC_MSG


def _bind(values: list, encoding: str) -> bytes:
    """Bind the unnamed portal to the unnamed statement: text parameters, text results (as pg8000 does)."""
    body = bytearray(NULL_BYTE + NULL_BYTE + H_pack(0) + H_pack(len(values)))
    for value in values:
        if value is None:
            body += i_pack(-1)
        else:
            encoded = value.encode(encoding)
            body += i_pack(len(encoded)) + encoded
    body += H_pack(0)
    return _message(BIND, bytes(body))


@lru_cache(maxsize=_PREPARED_PER_CONNECTION)
def _statement(sql: str, encoding: str):
    """pg8000's `:name` to `$n` rewrite (a Python pass over the SQL text) and the Parse message, once per text."""
    statement, make_values = to_statement(sql)
    return statement, make_values, _message(PARSE, NULL_BYTE + statement.encode(encoding) + NULL_BYTE + H_pack(0))


_log = logger("postgres")
# SQLSTATEs that mean "the server cannot take this connection now": too_many_connections, cannot_connect_now,
# admin/crash shutdown. They are a full or restarting server, not a bug.
_BUSY_SERVER = {"53300", "57P03", "57P01", "57P02"}
_QUERY_CANCELED = "57014"  # statement_timeout (or an operator's pg_cancel_backend)


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    # Built once: pg8000 would otherwise build a new context (~50 ms) on every connect.
    return ssl.create_default_context()


def connect(url: str, timeout: float, pooler: str = "none",
            statement_timeout: float | None = None) -> Connection | PooledConnection:
    """A connection to `url`; with `pooler="transaction"` one that keeps no session state (PgBouncer).

    `statement_timeout` (seconds) has the server cancel a statement that runs longer, as the client gives up on it
    after `timeout`: otherwise the abandoned statement goes on (stuck behind a lock: until the lock goes), and the
    next request opens another connection. A startup parameter, so not through PgBouncer, which refuses those: there
    PgBouncer's connect_query sets it (local/deploy/pgbouncer.py)."""
    parts = urlsplit(url)
    sslmode = parse_qs(parts.query).get("sslmode", ["disable"])[0]
    pooled = pooler == "transaction"
    startup = None if pooled or statement_timeout is None else \
        {"statement_timeout": str(round(statement_timeout * 1000))}
    return (PooledConnection if pooled else Connection)(
        user=unquote(parts.username or "postgres"), password=unquote(parts.password) if parts.password else None,
        host=parts.hostname or "127.0.0.1", port=parts.port or 5432, database=parts.path.lstrip("/") or None,
        ssl_context=False if sslmode in ("disable", "allow", "prefer") else _tls_context(),
        timeout=timeout, application_name="shop", startup_params=startup)


_ALL_BUSY = "All database connections of this instance are busy; retry shortly"


class Pool:
    """At most `size` open connections; idle ones are reused, a broken one is dropped instead of returned."""

    def __init__(self, url: str, timeout: float, size: int = 8, acquire_timeout: float = 1.0, pooler: str = "none",
                 statement_timeout: float | None = None):
        self.url, self.timeout, self.acquire_timeout, self.pooler = url, timeout, acquire_timeout, pooler
        self.statement_timeout = statement_timeout
        self._open = threading.BoundedSemaphore(size)
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue(maxsize=size)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        if not self._open.acquire(timeout=self.acquire_timeout):
            raise ServiceUnavailable(_ALL_BUSY)
        try:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                connection = _connect_or_unavailable(self.url, self.timeout, self.pooler, self.statement_timeout)
            healthy = True
            try:
                yield connection
            except InterfaceError:
                healthy = False
                raise
            except OSError as error:  # pg8000 lets a read past DATABASE_TIMEOUT_SECONDS out as the socket's own error
                healthy = False
                raise ServiceUnavailable("The database did not answer in time; retry shortly") from error
            except DatabaseError as error:
                if _sqlstate(error) in _BUSY_SERVER:
                    healthy = False
                    raise ServiceUnavailable("The database is refusing work right now; retry shortly") from error
                if _sqlstate(error) == _QUERY_CANCELED:  # its statement_timeout, as the client's own timeout
                    raise ServiceUnavailable("The database did not answer in time; retry shortly") from error
                raise
            finally:
                if healthy and _is_idle(connection):
                    self._idle.put_nowait(connection)
                else:
                    _close_quietly(connection)
        finally:
            self._open.release()

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


def _connect_or_unavailable(url: str, timeout: float, pooler: str,
                            statement_timeout: float | None) -> Connection | PooledConnection:
    try:
        return connect(url, timeout, pooler, statement_timeout)
    except DatabaseError as error:
        if _sqlstate(error) in _BUSY_SERVER:
            raise ServiceUnavailable("The database has no connection to spare (too many clients)") from error
        raise


def _sqlstate(error: DatabaseError) -> str | None:
    details = error.args[0] if error.args else None
    return details.get("C") if isinstance(details, dict) else None


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
    except (InterfaceError, OSError):  # broken, or timed out: the pool closes it
        pass


_pool: Pool | None = None
_pool_lock = threading.Lock()
_UNDEFINED_TABLE = "42P01"


def pool() -> Pool:
    """The process's pool, once the database has every migration (checked, never applied: that is a deploy step).
    Until it has, each call checks again and raises SchemaBehind (503)."""
    global _pool
    if _pool is not None:
        return _pool
    config = settings(PostgresSettings)
    # One thread checks at a time; the others wait no longer than for a connection (a database that does not
    # answer would otherwise make the k-th wait k checks).
    if not _pool_lock.acquire(timeout=config.database_acquire_timeout_seconds):
        raise ServiceUnavailable(_ALL_BUSY)
    try:
        if _pool is None:
            candidate = Pool(config.database_url, config.database_timeout_seconds,
                             config.database_max_connections, config.database_acquire_timeout_seconds,
                             config.database_pooler, statement_timeout=config.database_timeout_seconds)
            require_migrated(candidate)
            _pool = candidate
    finally:
        _pool_lock.release()
    return _pool


def require_migrated(target: Pool) -> None:
    """Raise SchemaBehind when the database lacks a migration of this image (one read)."""
    with target.connection() as connection:
        try:
            applied = {row[0] for row in connection.run("SELECT version FROM schema_migrations")}
        except DatabaseError as error:
            if _sqlstate(error) != _UNDEFINED_TABLE:
                raise
            applied = set()
    missing = missing_migrations(applied, [version for version, _ in migrations()])
    if missing:
        raise SchemaBehind(f"PostgreSQL lacks migration {', '.join(missing)}")


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _database_threads() -> ThreadPoolExecutor:
    """Threads of their own for database work, one per connection the pool may open: the asyncio default executor
    (cpu count + 4 threads) would cap the pool below its size, and be shared with other blocking calls."""
    global _executor
    if _executor is None:  # on the event loop: never behind _pool_lock, which pool() holds across a round trip
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(settings(PostgresSettings).database_max_connections,
                                               thread_name_prefix="postgres")
    return _executor


def _new_admission() -> asyncio.Semaphore:
    return asyncio.Semaphore(settings(PostgresSettings).database_max_connections)


# One permit per database thread (and connection): a request waits for one here, at most
# DATABASE_ACQUIRE_TIMEOUT_SECONDS. Waiting in the executor's queue instead had no bound: each queued request
# waited for every one before it, up to DATABASE_TIMEOUT_SECONDS each, and the pool's own timeout never ran.
_admission = per_event_loop(_new_admission)


async def _in_thread(run: Callable[[], T]) -> T:
    admission, loop = _admission(), asyncio.get_running_loop()
    try:
        async with asyncio.timeout(settings(PostgresSettings).database_acquire_timeout_seconds):
            await admission.acquire()
    except TimeoutError:
        raise ServiceUnavailable(_ALL_BUSY) from None
    context = contextvars.copy_context()  # the request id follows the work into its thread's logs
    try:
        work = _database_threads().submit(context.run, run)
    except BaseException:
        admission.release()
        raise
    # Given back when the thread is done with it, not when the caller stops waiting (a cancelled request).
    work.add_done_callback(lambda _: _release_from_thread(loop, admission))
    return await asyncio.wrap_future(work)


def _release_from_thread(loop: asyncio.AbstractEventLoop, admission: asyncio.Semaphore) -> None:
    try:
        loop.call_soon_threadsafe(admission.release)
    except RuntimeError:  # the loop closed meanwhile (shutdown): nothing waits for the permit any more
        pass


async def in_transaction(work: Callable[[Connection], T]) -> T:
    """Run `work(connection)` in one transaction on a database thread."""
    def run() -> T:
        with pool().transaction() as connection:
            return work(connection)

    return await _in_thread(run)


async def in_connection(work: Callable[[Connection], T]) -> T:
    """Run `work(connection)` without a transaction block: each statement commits on its own (one round trip
    for a single statement, instead of three with BEGIN and COMMIT)."""
    def run() -> T:
        with pool().connection() as connection:
            return work(connection)

    return await _in_thread(run)


FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"


def migrations() -> list[tuple[str, Path]]:
    """Every domain's versioned SQL files, `functions/<domain>/migrations/NNNN_name.sql`, as (version, path)."""
    return sorted((f"{path.parent.parent.name}/{path.stem}", path) for path in FUNCTIONS.glob("*/migrations/*.sql"))


def migrate(target: Pool) -> list[str]:
    """Apply the migrations this database has not seen yet, each domain's in version order (the deploy step only).

    Idempotent and safe to run from many processes at once: an advisory lock serialises them.
    """
    applied_now = []
    with target.transaction() as connection:
        # The client's timeout, not the one PgBouncer's connect_query gives the functions' statements: a migration
        # may take longer than a request (transaction-scoped, so nothing is left on a pooled server connection).
        connection.run(f"SET LOCAL statement_timeout = {round(target.timeout * 1000)}")
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
