"""shared/mongo.py's replacement of pymongo's async receive: active on the pymongo it was reviewed for (an
upgrade fails here, to be reviewed again), and it keeps the deadline and cancellation. Real reads through it
are every store test of the catalog."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pymongo
import pytest

from shared import mongo


class _SilentServer:
    """A connection whose reply never comes."""

    def __init__(self, timeout: float | None):
        self.gettimeout = timeout
        self.get_conn = self

    async def read(self, request_id, max_message_size):
        await asyncio.Event().wait()


def test_the_replacement_is_active_on_the_reviewed_pymongo():
    assert pymongo.version.startswith(mongo.RECEIVE_REVIEWED_FOR), (
        f"pymongo {pymongo.version}: review shared/mongo.py _receive_message against its async_receive_message")
    assert mongo.receive_replaced()


def test_a_reply_that_does_not_come_times_out_at_the_socket_timeout():
    connection = SimpleNamespace(conn=_SilentServer(0.05))

    with pytest.raises(TimeoutError):
        asyncio.run(mongo._receive_message(connection, 1))


def test_a_cancelled_request_cancels_its_read():
    connection = SimpleNamespace(conn=_SilentServer(None))

    async def cancelled():
        read = asyncio.create_task(mongo._receive_message(connection, 1))
        await asyncio.sleep(0.01)
        read.cancel()
        await read

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
