"""One AsyncMongoClient per process, created on first use inside the running event loop."""

from __future__ import annotations

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError

from shared.errors import register_unavailable
from shared.loop_local import per_event_loop
from shared.schema import SchemaBehind
from shared.settings import MongoSettings, settings

register_unavailable(ConnectionFailure, ServerSelectionTimeoutError, AutoReconnect)


def _new_client() -> AsyncMongoClient:
    config = settings(MongoSettings)
    return AsyncMongoClient(
        config.mongodb_url,
        serverSelectionTimeoutMS=config.mongodb_timeout_ms,
        connectTimeoutMS=config.mongodb_timeout_ms,
        socketTimeoutMS=5 * config.mongodb_timeout_ms,
        tz_aware=True,
        appname="shop",
    )


_client = per_event_loop(_new_client)
# Collections are cached too: building pymongo's Database/Collection objects costs about a find_one's CPU.
_collections: dict[tuple[int, str], AsyncCollection] = {}


def collection(name: str) -> AsyncCollection:
    """A collection of the shop database; operations fail fast (503) when the server cannot be reached."""
    client = _client()
    found = _collections.get((id(client), name))
    if found is None:
        found = _collections[(id(client), name)] = client[settings(MongoSettings).mongodb_database][name]
    return found


# The deploy step records each component's index version here: {_id: component, version: n} (local/migrate.py).
MONGO_MARKERS = "schema_versions"
_mongo_ready: set[tuple[str, int]] = set()


async def require_mongo(component: str, version: int) -> None:
    """Raise SchemaBehind unless the migration step recorded `component` at `version` or later (one read per
    process once it has)."""
    if (component, version) in _mongo_ready:
        return
    marker = await collection(MONGO_MARKERS).find_one({"_id": component})
    found = marker["version"] if marker else None
    if found is None or found < version:
        raise SchemaBehind(f"{component} indexes at version {found or 'none'}, {version} needed")
    _mongo_ready.add((component, version))
