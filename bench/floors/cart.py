"""The cart's floor: redis-py's asyncio client, one GET (see bench/floors)."""

from bench.floors.answer import answer, imported  # noqa: I001 - first: gc held while the floor imports

import os

import functions_framework.aio
from redis.asyncio import Redis

_client = []


@functions_framework.aio.http
async def floor(request):
    if not _client:
        _client.append(Redis.from_url(os.environ["REDIS_URL"]))
    return answer(await _client[0].get("floor:cart") is not None)


imported()
