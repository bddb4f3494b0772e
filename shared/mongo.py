"""One AsyncMongoClient per process, created on first use inside the running event loop."""

from __future__ import annotations

import asyncio

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError

from shared.errors import register_unavailable
from shared.settings import MongoSettings, settings

register_unavailable(ConnectionFailure, ServerSelectionTimeoutError, AutoReconnect)

_clients: dict[asyncio.AbstractEventLoop, AsyncMongoClient] = {}


def database() -> AsyncDatabase:
    """The shop database; fails fast (503) when the server cannot be reached."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        config = settings(MongoSettings)
        client = AsyncMongoClient(
            config.mongodb_url,
            serverSelectionTimeoutMS=config.mongodb_timeout_ms,
            connectTimeoutMS=config.mongodb_timeout_ms,
            socketTimeoutMS=5 * config.mongodb_timeout_ms,
            tz_aware=True,
            appname="shop",
        )
        _clients[loop] = client
    return client[settings(MongoSettings).mongodb_database]
