"""What DATABASE_POOLER=transaction costs: one parametrised statement run as a named prepared statement (the
default), as one unnamed Parse/Bind/Describe/Execute/Sync message (the pooled mode), and as pg8000's own unnamed
path (three syncs), directly against PostgreSQL and through a PgBouncer started here. Client CPU and wall time per
statement, as ratios against the named statement measured directly in the same run.

    python -m bench.pooler [--statements 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pg8000.native

from local.config import local_setting
from shared.postgres import connect
from tests.stores.servers import pgbouncer

SQL = "SELECT relname, relkind FROM pg_class WHERE oid = :oid"  # an index lookup, like the orders' reads
OID = 1259  # pg_class itself


def per_statement(connection, count: int) -> tuple[float, float]:
    connection.run(SQL, oid=OID)  # prepared (named mode) and warm
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        connection.run(SQL, oid=OID)
    return (time.process_time() - cpu) / count, (time.perf_counter() - wall) / count


def stock(url: str) -> pg8000.native.Connection:
    parts = urlsplit(url)
    return pg8000.native.Connection(parts.username or "postgres", host=parts.hostname, port=parts.port or 5432,
                                    database=parts.path.lstrip("/"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    direct = local_setting("DATABASE_URL").rsplit("/", 1)[0] + "/postgres"
    backend = urlsplit(direct)
    with tempfile.TemporaryDirectory() as logs, pgbouncer(Path(logs), backend.hostname, backend.port or 5432,
                                                          2) as bouncer:
        pooled = bouncer.url("postgres")
        variants = {
            "named prepared, direct (default)": lambda: connect(direct, 5),
            "one-message unnamed, direct": lambda: connect(direct, 5, "transaction"),
            "pg8000 unnamed (3 syncs), direct": lambda: stock(direct),
            "one-message unnamed, PgBouncer": lambda: connect(pooled, 5, "transaction"),
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for _ in range(options.rounds):  # interleaved, so drift on a shared machine hits every variant alike
            for name, open_connection in variants.items():
                connection = open_connection()
                samples[name].append(per_statement(connection, options.statements))
                connection.close()
    base_cpu, base_wall = (statistics.median(values) for values in zip(*samples[next(iter(variants))]))
    print(f"{'per statement':36} {'client CPU':>11} {'ratio':>6} {'wall':>9} {'ratio':>6}")
    for name, values in samples.items():
        cpu, wall = (statistics.median(column) for column in zip(*values))
        print(f"{name:36} {cpu * 1e6:9.0f}µs {cpu / base_cpu:5.2f}× {wall * 1e6:7.0f}µs {wall / base_wall:5.2f}×")


if __name__ == "__main__":
    main()
