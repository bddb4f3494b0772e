"""The whole orders suite again, with every function's PostgreSQL pool behind a real PgBouncer in transaction
pooling (DATABASE_POOLER=transaction), plus what only PgBouncer shows: many pools share few server connections."""

from __future__ import annotations

import asyncio

import httpx

from shared.postgres import connect
from tests.functions.test_orders import *  # noqa: F403 - every orders test, collected again through PgBouncer
from tests.functions.test_orders import order_body, product
from tests.stores.conftest import POOL_SIZE
from tests.stores.through_pgbouncer import gateway, shop  # noqa: F401 - the pooled shop for every test here
from tests.support import bearer, unique


def pgbouncer_console(bouncer, command: str) -> list[dict]:
    """A SHOW command of PgBouncer's admin console, as rows of named columns."""
    console = connect(bouncer.url("pgbouncer"), timeout=5)
    try:
        rows = console.run(command)
        names = [column["name"] for column in console.columns]
    finally:
        console.close()
    return [dict(zip(names, row)) for row in rows]


def test_many_function_pools_share_the_few_server_connections(gateway, bouncer, postgres_url):
    buyers = [unique("pooled") for _ in range(3)]
    lamp = product(gateway, stock=100)

    async def burst():
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
            orders = [client.post("/orders", json=order_body(user, [(lamp, 1)]),
                                  headers={**bearer(user), "Idempotency-Key": unique("key")})
                      for user in buyers for _ in range(4)]
            reads = [client.get(f"/orders/{user}", headers=bearer(user)) for user in buyers for _ in range(10)]
            return await asyncio.gather(*orders, *reads)

    responses = asyncio.run(burst())

    assert all(response.status_code in (200, 201) for response in responses), [r.text for r in responses]
    database = postgres_url.rsplit("/", 1)[1]
    clients = [row for row in pgbouncer_console(bouncer, "SHOW CLIENTS") if row["database"] == database]
    servers = [row for row in pgbouncer_console(bouncer, "SHOW SERVERS") if row["database"] == database]
    assert len(clients) > 2 * POOL_SIZE  # every function process keeps its own pool of client connections
    assert 1 <= len(servers) <= POOL_SIZE
