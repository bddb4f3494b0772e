"""The orders' and notifications' floor: a pg8000 connection, one SELECT, one pydantic model (see bench/floors)."""

import gc

gc.disable()

import os
from urllib.parse import unquote, urlsplit

import functions_framework.aio
from pg8000.native import Connection
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

ANSWERED = Counter("floor_orders_requests", "requests answered")
_connection = []


class Found(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built on the first request, as ours (shared.model)

    found: bool


@functions_framework.aio.http
async def floor(request):
    if not _connection:
        url = urlsplit(os.environ["DATABASE_URL"])
        # sslmode is not read: the bench's PostgreSQL is local (shared.postgres.connect reads it for the shop)
        _connection.append(Connection(unquote(url.username or "postgres"), host=url.hostname or "127.0.0.1",
                                      port=url.port or 5432, database=url.path.lstrip("/") or None,
                                      password=unquote(url.password) if url.password else None, ssl_context=False))
    rows = _connection[0].run("SELECT 1")
    ANSWERED.inc()
    return Response(Found(found=bool(rows)).model_dump_json(), media_type="application/json")


gc.freeze()
gc.enable()
