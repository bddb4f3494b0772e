"""The catalog's floor: pymongo's async client, one find_one, one pydantic model (see bench/floors)."""

import gc

gc.disable()

import os

import functions_framework.aio
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict
from pymongo import AsyncMongoClient
from starlette.responses import Response

ANSWERED = Counter("floor_catalog_requests", "requests answered")
_client = []


class Found(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built on the first request, as ours (shared.model)

    found: bool


@functions_framework.aio.http
async def floor(request):
    if not _client:
        _client.append(AsyncMongoClient(os.environ["MONGODB_URL"]))
    document = await _client[0][os.environ["MONGODB_DATABASE"]]["products"].find_one({})
    ANSWERED.inc()
    return Response(Found(found=document is not None).model_dump_json(), media_type="application/json")


gc.freeze()
gc.enable()
