"""One AsyncMongoClient per process, created on first use inside the running event loop."""

from __future__ import annotations

import asyncio

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError

from shared.errors import register_unavailable
from shared.settings import MongoSettings, settings

register_unavailable(ConnectionFailure, ServerSelectionTimeoutError, AutoReconnect)

# Keyed by event loop: a client belongs to the loop that created it. Collections are cached too, since
# building pymongo's Database/Collection objects costs about as much CPU as a find_one round trip.
_collections: dict[tuple[asyncio.AbstractEventLoop, str], AsyncCollection] = {}
_clients: dict[asyncio.AbstractEventLoop, AsyncMongoClient] = {}


def collection(name: str) -> AsyncCollection:
    """A collection of the shop database; operations fail fast (503) when the server cannot be reached."""
    loop = asyncio.get_running_loop()
    found = _collections.get((loop, name))
    if found is None:
        config = settings(MongoSettings)
        client = _clients.get(loop)
        if client is None:
            client = _clients[loop] = AsyncMongoClient(
                config.mongodb_url,
                serverSelectionTimeoutMS=config.mongodb_timeout_ms,
                connectTimeoutMS=config.mongodb_timeout_ms,
                socketTimeoutMS=5 * config.mongodb_timeout_ms,
                tz_aware=True,
                appname="shop",
            )
        found = _collections[(loop, name)] = client[config.mongodb_database][name]
    return found
