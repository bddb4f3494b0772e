"""The catalog's floor: pymongo's async client, one find_one (see bench/floors)."""

from bench.floors.answer import answer, imported  # noqa: I001 - first: gc held while the floor imports

import os

import functions_framework.aio
from pymongo import AsyncMongoClient

_client = []


@functions_framework.aio.http
async def floor(request):
    if not _client:
        _client.append(AsyncMongoClient(os.environ["MONGODB_URL"]))
    document = await _client[0][os.environ["MONGODB_DATABASE"]]["products"].find_one({})
    return answer(document is not None)


imported()
