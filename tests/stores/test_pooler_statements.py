"""Why DATABASE_POOLER=transaction exists, shown on a real PgBouncer with one server connection: named prepared
statements of two clients meet on the same server connection, and unnamed one-message statements do not."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from pg8000.exceptions import DatabaseError

from shared.postgres import PooledConnection, Pool, connect
from tests.stores.servers import pgbouncer


@pytest.fixture(scope="module")
def single_server(postgres_url, tmp_path_factory):
    backend = urlsplit(postgres_url)
    with pgbouncer(tmp_path_factory.mktemp("pgbouncer-one"), backend.hostname, backend.port or 5432, 1) as running:
        yield running.url(backend.path.lstrip("/"))


def test_named_prepared_statements_break_behind_transaction_pooling(single_server):
    first, second = connect(single_server, timeout=5), connect(single_server, timeout=5)
    try:
        assert first.run("SELECT :n::int", n=1) == [[1]]  # prepared as pg8000_statement_0 on the one server

        with pytest.raises(DatabaseError) as refused:
            second.run("SELECT :n::int + 1", n=1)  # its own pg8000_statement_0, on that same server connection
    finally:
        first.close()
        second.close()

    assert refused.value.args[0]["C"] == "42P05"  # duplicate_prepared_statement


def test_pooled_connections_share_one_server_connection_statement_after_statement(single_server):
    first, second = connect(single_server, 5, "transaction"), connect(single_server, 5, "transaction")
    try:
        for n in range(3):
            assert isinstance(first, PooledConnection)
            assert first.run("SELECT :n::int", n=n) == [[n]]
            assert second.run("SELECT :n::int + 1", n=n) == [[n + 1]]
            assert first.run("SELECT :word || :word AS twice", word="ab") == [["abab"]]
            assert first.columns[0]["name"] == "twice"
    finally:
        first.close()
        second.close()


def test_a_pooled_transaction_keeps_its_server_connection_and_an_error_leaves_the_connection_usable(single_server):
    pool = Pool(single_server, timeout=5, size=2, pooler="transaction")
    with pool.transaction() as connection:
        backend = connection.run("SELECT pg_backend_pid()")
        assert connection.run("SELECT pg_backend_pid() = :pid", pid=backend[0][0]) == [[True]]
    with pool.connection() as connection:
        with pytest.raises(DatabaseError):
            connection.run("SELECT :n::int", n="not a number")
        assert connection.run("SELECT :n::int", n=7) == [[7]]
