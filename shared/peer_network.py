"""The sockets under the pool of shared.peers' http:// transport: plain TCP on asyncio's own transports.

httpcore's default asyncio backend goes through anyio, whose streams add checkpoints (event loop turns), cancel
scopes and a timeout scope to every read and write: ~80 µs of CPU per call between functions, measured, of the
~380 µs httpcore's whole call costs. httpcore keeps everything HTTP (h11, keep-alive, the pool, its retries); this
only moves bytes. Plain TCP only: https:// peers go through httpx's default transport (shared.peers).
"""

from __future__ import annotations

import asyncio
import select
import socket
from collections import deque

import httpcore

_TIMED_OUT = object()
# Past this many unread bytes the transport stops reading the socket until httpcore has taken some: the kernel's
# buffers and TCP's window hold back the peer instead of this process's memory.
_READ_AHEAD = 256 * 1024


class _Connection(asyncio.Protocol):
    """Buffers what the peer sent until httpcore reads it; wakes the one reader waiting, if any."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received: deque[bytes] = deque()
        self.buffered = 0
        self.reading_paused = False
        self.closed = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future | None = None
        self.writable: asyncio.Future | None = None  # set while the transport's write buffer is over its limit

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:  # as anyio does: a request's bytes leave at once, never held back by Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.received.append(data)
        self.buffered += len(data)
        if self.buffered > _READ_AHEAD and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake()

    def take(self, max_bytes: int) -> bytes:
        """At most `max_bytes` of what was received, in order (the caller knows something is there)."""
        data = self.received.popleft()
        if len(data) > max_bytes:
            self.received.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        self.buffered -= len(data)
        if self.reading_paused and self.buffered <= _READ_AHEAD // 2 and not self.closed:
            self.transport.resume_reading()
            self.reading_paused = False
        return data

    def eof_received(self) -> None:
        self.closed = True
        self._wake()  # returning None closes the transport

    def connection_lost(self, error: Exception | None) -> None:
        self.closed, self.error = True, error
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self.writable = self.writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


async def _wait(future: asyncio.Future, timeout: float | None) -> bool:
    """False when `timeout` passed first; a cancellation of the caller is raised as it is."""
    timer = None
    if timeout is not None:
        timer = asyncio.get_running_loop().call_later(
            timeout, lambda: future.done() or future.set_result(_TIMED_OUT))
    try:
        return await future is not _TIMED_OUT
    finally:
        if timer is not None:
            timer.cancel()


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        connection = self._connection
        if not connection.received and not connection.closed:
            assert connection.waiter is None  # httpcore's HTTP/1.1 reads a connection from one task at a time
            connection.waiter = asyncio.get_running_loop().create_future()
            try:
                if not await _wait(connection.waiter, timeout):
                    raise httpcore.ReadTimeout("The peer sent nothing in time")
            finally:
                connection.waiter = None
        if not connection.received:
            if connection.error is not None:
                raise httpcore.ReadError(str(connection.error) or type(connection.error).__name__)
            return b""  # the peer closed the connection
        return connection.take(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        connection = self._connection
        if not buffer:
            return
        if connection.closed or connection.transport.is_closing():
            raise httpcore.WriteError("The connection to the peer is closed")
        connection.transport.write(buffer)
        if connection.writable is not None and not await _wait(connection.writable, timeout):
            raise httpcore.WriteTimeout("The peer took nothing in time")

    async def aclose(self) -> None:
        transport = self._connection.transport
        if transport.get_write_buffer_size():
            transport.abort()  # close() would wait, unbounded, for a peer that reads nothing
        else:
            transport.close()

    def get_extra_info(self, info: str):
        connection = self._connection
        if info == "is_readable":  # httpcore asks before reusing an idle connection: data or EOF means drop it
            return bool(connection.received) or connection.closed or _readable(connection.transport)
        if info == "socket":
            return connection.transport.get_extra_info("socket")
        if info == "client_addr":
            return connection.transport.get_extra_info("sockname")
        if info == "server_addr":
            return connection.transport.get_extra_info("peername")
        return None


def _readable(transport: asyncio.Transport) -> bool:
    """Whether the socket holds data or an EOF the event loop has not delivered yet (the peer closed an idle
    connection while this task ran without yielding): such a connection must not carry the next request."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.fileno() < 0:
        return True
    return bool(select.select([sock], [], [], 0)[0])


class PlainTCP(httpcore.AsyncNetworkBackend):
    """httpcore's network backend for http:// peers, on the running event loop's transports."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options=None) -> httpcore.AsyncNetworkStream:
        if local_address is not None or socket_options:
            raise httpcore.UnsupportedProtocol("local_address and socket_options are not supported here")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(_Connection, host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"No connection to {host}:{port} in time") from None
        except OSError as error:
            raise httpcore.ConnectError(str(error)) from None
        return _Stream(connection)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
