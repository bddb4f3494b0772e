"""One AsyncMongoClient per process, created on first use inside the running event loop."""

from __future__ import annotations

import asyncio
import time

import pymongo
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient, network_layer
from pymongo.asynchronous import pool
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError

from shared.errors import register_unavailable
from shared.loop_local import per_event_loop
from shared.schema import SchemaBehind
from shared.settings import MongoSettings, settings

register_unavailable(ConnectionFailure, ServerSelectionTimeoutError, AutoReconnect)

# The pymongo whose async receive `_receive_message` replaces (see there); any other keeps its own.
RECEIVE_REVIEWED_FOR = "4.20."


async def _receive_message(conn, request_id: int | None, max_message_size: int = network_layer.MAX_MESSAGE_SIZE):
    """pymongo's async_receive_message without its cancellation poll: pymongo 4.20 starts two tasks per reply
    (the read and a poll of the connection's cancel flag) and waits on both, ~60-110 µs of CPU per round trip;
    this awaits the read under the same deadline. What is lost: a pool reset no longer interrupts a read in
    flight; that read ends with the server's reply, the connection's error, or the socket timeout
    (MONGODB_TIMEOUT_MS, or an operation's own `pymongo.timeout`); and Monitor.cancel_check() after an
    application network error no longer interrupts a streaming monitor's hello in flight (on Knative pymongo polls
    instead: it sees K_SERVICE). Any failure still closes the connection (pool.AsyncConnection.receive_message)."""
    if network_layer._csot.get_timeout():
        deadline = network_layer._csot.get_deadline()
    else:
        timeout = conn.conn.gettimeout
        deadline = time.monotonic() + timeout if timeout else None
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(None if deadline is None else loop.time() + max(deadline - time.monotonic(), 0)):
            data, op_code = await conn.conn.get_conn.read(request_id, max_message_size)
    except TimeoutError:
        raise TimeoutError("timed out") from None
    unpack_reply = network_layer._UNPACK_REPLY.get(op_code)
    if unpack_reply is None:
        raise network_layer.ProtocolError(f"Got opcode {op_code!r} but expected {network_layer._UNPACK_REPLY.keys()!r}")
    return unpack_reply(data)


def receive_replaced() -> bool:
    """Whether async clients receive through `_receive_message` (only on the reviewed pymongo)."""
    return pool.async_receive_message is _receive_message


if pymongo.version.startswith(RECEIVE_REVIEWED_FOR) and \
        pool.async_receive_message is network_layer.async_receive_message:
    pool.async_receive_message = _receive_message


def _new_client() -> AsyncMongoClient:
    config = settings(MongoSettings)
    return AsyncMongoClient(
        config.mongodb_url,
        serverSelectionTimeoutMS=config.mongodb_timeout_ms,
        connectTimeoutMS=config.mongodb_timeout_ms,
        # A server that stops answering (paused, partitioned) costs a request this long, then 503: a longer
        # operation (search, index builds) sets its own deadline with pymongo.timeout.
        socketTimeoutMS=config.mongodb_timeout_ms,
        tz_aware=True,
        appname="shop",
    )


_client = per_event_loop(_new_client)
# Collections are cached too: building pymongo's Database/Collection objects costs about a find_one's CPU.
_collections: dict[tuple[int, str, bool], AsyncCollection] = {}


def collection(name: str, *, raw: bool = False) -> AsyncCollection:
    """A collection of the shop database; operations fail fast (503) when the server cannot be reached. `raw`:
    its reads answer undecoded BSON (RawBSONDocument), to decode later with the client's `codec_options`."""
    client = _client()
    found = _collections.get((id(client), name, raw))
    if found is None:
        found = client[settings(MongoSettings).mongodb_database][name]
        if raw:
            found = found.with_options(codec_options=found.codec_options.with_options(document_class=RawBSONDocument))
        _collections[(id(client), name, raw)] = found
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
