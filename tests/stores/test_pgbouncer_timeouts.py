"""Through PgBouncer the functions cannot give their connections a statement_timeout (no startup parameter, no
session SET): the generated PgBouncer sets it on every server connection (connect_query), so a statement a function
gave up on is cancelled by the server too, as it is without PgBouncer."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

from tests.functions.test_stalled_stores import stuck_behind_a_lock


def test_a_statement_stuck_behind_a_lock_through_pgbouncer_is_503_and_cancelled_by_the_server(
        pooled_settings, postgres_url, tmp_path):
    stuck_behind_a_lock(pooled_settings, postgres_url, tmp_path)


def test_the_migration_step_through_pgbouncer_waits_longer_than_a_request_may(bouncer, postgres_url):
    from shared.postgres import Pool, connect, migrate

    pooled = bouncer.url(urlsplit(postgres_url).path.lstrip("/"))
    migrate(Pool(pooled, timeout=10, pooler="transaction"))  # up to date: the run below only reads
    blocker = connect(postgres_url, timeout=10)
    blocker.run("BEGIN")
    blocker.run("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE")
    releasing = threading.Timer(2.5, blocker.run, ["ROLLBACK"])  # past the functions' 1.5 s statement_timeout
    started = time.monotonic()
    releasing.start()
    try:
        applied = migrate(Pool(pooled, timeout=10, pooler="transaction"))
        waited = time.monotonic() - started
    finally:
        releasing.join()
        blocker.close()

    assert applied == [] and waited >= 2.4  # it waited for the lock, not cancelled at 1.5 s
