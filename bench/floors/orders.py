"""The orders' and notifications' floor: a pg8000 connection, one SELECT (see bench/floors)."""

from bench.floors.answer import answer, imported  # noqa: I001 - first: gc held while the floor imports

import os
from urllib.parse import unquote, urlsplit

import functions_framework.aio
from pg8000.native import Connection

_connection = []


@functions_framework.aio.http
async def floor(request):
    if not _connection:
        url = urlsplit(os.environ["DATABASE_URL"])
        # sslmode is not read: the bench's PostgreSQL is local (shared.postgres.connect reads it for the shop)
        _connection.append(Connection(unquote(url.username or "postgres"), host=url.hostname or "127.0.0.1",
                                      port=url.port or 5432, database=url.path.lstrip("/") or None,
                                      password=unquote(url.password) if url.password else None, ssl_context=False))
    return answer(bool(_connection[0].run("SELECT 1")))


imported()
