"""The cart's floor: redis-py's asyncio client, one GET, one pydantic model (see bench/floors)."""

import gc

gc.disable()

import os

import functions_framework.aio
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis
from starlette.responses import Response

ANSWERED = Counter("floor_cart_requests", "requests answered")
_client = []


class Found(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built on the first request, as ours (shared.model)

    found: bool


@functions_framework.aio.http
async def floor(request):
    if not _client:
        _client.append(Redis.from_url(os.environ["REDIS_URL"]))
    value = await _client[0].get("floor:cart")
    ANSWERED.inc()
    return Response(Found(found=value is not None).model_dump_json(), media_type="application/json")


gc.freeze()
gc.enable()
