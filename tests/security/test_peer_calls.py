"""A call to another function (shared.peers.call) against real local servers: what goes out (service token, request
id, JSON body, query, no cookie), and how a peer that is down, slow, broken or refusing is answered."""

from __future__ import annotations

import asyncio
import json

import pytest

from local.service_keys import new_private_pem
from shared import catalog_client, peers, service_tokens
from shared.errors import BadGateway, ServiceUnavailable
from shared.logs import request_id
from shared.service_identity import SERVICE_TOKEN_HEADER
from shared.settings import settings

PEER = "catalog-lookup-products"


@pytest.fixture(autouse=True)
def caller(monkeypatch):
    monkeypatch.setenv("SERVICE_PRIVATE_KEY", new_private_pem())
    monkeypatch.setenv("K_SERVICE", "cart-get-cart")
    monkeypatch.setenv("PEER_TIMEOUT_SECONDS", "0.5")
    settings.cache_clear()
    service_tokens._private_key.cache_clear()
    service_tokens._issued.clear()
    yield
    settings.cache_clear()
    service_tokens._private_key.cache_clear()
    service_tokens._issued.clear()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in head[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return head[0], headers, body


def answer(status: str, body: bytes, *extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "content-type: application/json", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def serving(monkeypatch, handle, scenario, peer=PEER):
    """Run `scenario()` while a local server, as `peer`, answers every request with `handle(reader, writer)`."""
    async def run():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        monkeypatch.setenv(peers.url_variable(peer), f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        async with server:
            return await scenario()

    return asyncio.run(run())


def test_a_call_sends_token_request_id_query_and_json_and_reads_the_answer(monkeypatch):
    seen = []

    async def handle(reader, writer):
        seen.append(await read_request(reader))
        writer.write(answer("201 Created", b'{"ok":true}'))
        await writer.drain()
        writer.close()

    async def scenario():
        request_id.set("req-1")
        return await peers.call(PEER, "POST", "/internal/x y", params={"a": "1", "b": "é"},
                                json={"lines": [{"sku": "S-é", "quantity": 2}]}, expected=(201,))

    response = serving(monkeypatch, handle, scenario)
    assert (response.status_code, response.json()) == (201, {"ok": True})
    line, headers, body = seen[0]
    assert line == "POST /internal/x%20y?a=1&b=%C3%A9 HTTP/1.1"
    assert headers["host"].startswith("127.0.0.1:")
    assert headers["x-request-id"] == "req-1"
    assert headers[SERVICE_TOKEN_HEADER.lower()].count(".") == 2  # a signed JWT
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"lines": [{"sku": "S-é", "quantity": 2}]}
    assert "cookie" not in headers


def test_an_http_peer_is_called_through_httpx_on_asyncio_sockets_and_a_cookie_it_sets_is_never_sent_back(
        monkeypatch):
    from shared.peer_network import PlainTCP

    seen, dialled = [], []

    async def handle(reader, writer):
        while not reader.at_eof():
            try:
                seen.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                break
            writer.write(answer("200 OK", b"{}", "set-cookie: session=of-another-user; Path=/"))
            await writer.drain()
        writer.close()

    connect = PlainTCP.connect_tcp

    async def counted(self, *args, **kwargs):
        dialled.append(args[:2])
        return await connect(self, *args, **kwargs)

    monkeypatch.setattr(PlainTCP, "connect_tcp", counted)

    async def scenario():
        for _ in range(2):
            response = await peers.call(PEER, "GET", "/internal/products/lookup?skus=A")
            assert response.json() == {} and type(response).__module__.startswith("httpx")

    serving(monkeypatch, handle, scenario)
    assert len(seen) == 2
    assert all("cookie" not in headers for _, headers, _ in seen)
    # httpx's transport sent both through the pool on asyncio's sockets, on one kept-alive connection: an httpx
    # that no longer calls through `_pool` would dial with anyio, and this count would be 0.
    assert len(dialled) == 1


@pytest.mark.parametrize(("behaviour", "error", "detail"), [
    ("never answers", ServiceUnavailable, "did not answer in time"),
    ("hangs up", BadGateway, "failed"),
    ("answers 500", ServiceUnavailable, "answered 500"),
])
def test_a_failing_peer_is_503_or_502_never_a_hang_or_a_500(monkeypatch, behaviour, error, detail):
    async def handle(reader, writer):
        await read_request(reader)
        if behaviour == "never answers":
            await asyncio.sleep(5)
        elif behaviour == "answers 500":
            writer.write(answer("500 Internal Server Error", b"{}"))
            await writer.drain()
        writer.close()

    async def scenario():
        with pytest.raises(error, match=detail):
            await peers.call(PEER, "GET", "/internal/products/lookup?skus=A")

    serving(monkeypatch, handle, scenario)


def test_an_unreachable_peer_is_503(monkeypatch):
    async def scenario():
        server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        monkeypatch.setenv(peers.url_variable(PEER), f"http://127.0.0.1:{port}")
        with pytest.raises(ServiceUnavailable, match="is unavailable"):
            await peers.call(PEER, "GET", "/internal/products/lookup?skus=A")

    asyncio.run(scenario())


def test_a_refusal_passes_through_with_its_status_and_detail(monkeypatch):
    async def handle(reader, writer):
        await read_request(reader)
        writer.write(answer("409 Conflict", b'{"status":409,"detail":"reservation released",'
                                            b'"type":"https://shop.example/problems/reservation-released"}'))
        await writer.drain()
        writer.close()

    async def scenario():
        with pytest.raises(peers.PeerRefused) as refused:
            await peers.call(PEER, "POST", "/internal/stock/reservations/r/confirm")
        return refused.value

    refusal = serving(monkeypatch, handle, scenario)
    assert (refusal.status, refusal.slug, refusal.detail) == (409, "reservation-released", "reservation released")


def test_a_connection_the_peer_closed_while_idle_is_not_reused_and_a_long_chunked_answer_arrives_whole(monkeypatch):
    big = json.dumps({"items": ["x" * 1000] * 300}).encode()  # 300 kB: more than one read
    connections = []

    async def handle(reader, writer):
        connections.append(1)
        await read_request(reader)
        head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        writer.write(head.encode())
        for start in range(0, len(big), 70_000):
            part = big[start:start + 70_000]
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()  # no `connection: close`: the caller learns it only from the closed socket

    async def scenario():
        answers = []
        for _ in range(2):
            answers.append((await peers.call(PEER, "GET", "/internal/products/lookup?skus=A")).content)
            await asyncio.sleep(0.05)
        return answers

    assert serving(monkeypatch, handle, scenario) == [big, big]
    assert len(connections) == 2


def test_a_caller_cancelled_while_waiting_is_cancelled_not_timed_out_and_the_next_call_works(monkeypatch):
    async def handle(reader, writer):
        line, _, _ = await read_request(reader)
        if "slow" in line:
            await asyncio.sleep(2)
        writer.write(answer("200 OK", b"{}"))
        await writer.drain()
        writer.close()

    async def scenario():
        waiting = asyncio.create_task(peers.call(PEER, "GET", "/internal/slow"))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return (await peers.call(PEER, "GET", "/internal/products/lookup?skus=A")).json()

    assert serving(monkeypatch, handle, scenario) == {}


def test_a_connection_the_peer_closed_while_this_process_was_busy_is_not_reused(monkeypatch):
    """The peer's FIN reached the socket while the caller's loop did not run (CPU work between two calls): the
    event loop has not seen it, the socket has, and the next call must take a new connection, not a 502."""
    import socketserver
    import threading
    import time

    class Answer(socketserver.BaseRequestHandler):
        def handle(self):
            received = b""
            while b"\r\n\r\n" not in received:
                received += self.request.recv(65536)
            self.request.sendall(answer("200 OK", b"{}"))
            time.sleep(0.005)  # keep-alive was not refused: the peer just closes a little later

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Answer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(peers.url_variable(PEER), f"http://127.0.0.1:{server.server_address[1]}")

    async def scenario():
        for _ in range(10):
            assert (await peers.call(PEER, "GET", "/internal/products/lookup?skus=A")).json() == {}
            time.sleep(0.03)  # blocking: the loop does not run while the peer closes

    try:
        asyncio.run(scenario())
    finally:
        server.shutdown()
        server.server_close()


def test_a_request_the_peer_never_reads_ends_in_time_and_its_connection_is_dropped(monkeypatch):
    from shared.peer_network import PlainTCP

    opened = []
    connect = PlainTCP.connect_tcp

    async def kept(self, *args, **kwargs):
        opened.append(await connect(self, *args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(PlainTCP, "connect_tcp", kept)

    async def never_reads(reader, writer):
        await reader.readuntil(b"\r\n\r\n")  # the head; the body is never read
        await asyncio.sleep(5)

    async def scenario():
        with pytest.raises(ServiceUnavailable, match="did not answer in time"):
            await peers.call(PEER, "POST", "/internal/x", json={"blob": "x" * 20_000_000})
        await asyncio.sleep(0.05)
        # Aborted, not closed: close() would keep the socket and megabytes of unsent body until a peer that reads
        # nothing took them.
        assert opened[0]._connection.closed

    serving(monkeypatch, never_reads, scenario)


def answering(status: str, body: bytes):
    async def handle(reader, writer):
        await read_request(reader)
        writer.write(answer(status, body))
        await writer.drain()
        writer.close()

    return handle


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b"{}", b'{"items": [{"sku": "A"}]}', b"[]"])
def test_a_peer_answering_a_body_outside_the_contract_is_502_not_a_500(monkeypatch, body):
    async def scenario():
        with pytest.raises(BadGateway, match="cannot read"):
            await catalog_client.lookup(["A"])

    serving(monkeypatch, answering("200 OK", body), scenario)


@pytest.mark.parametrize(("status", "body", "final"), [
    ("409 Conflict", b'{"type":"/problems/out-of-stock","status":409,"detail":"no",'
                     b'"errors":[{"field":"lines","type":"out_of_stock","message":"A"}]}', True),
    ("404 Not Found", b'{"type":"/problems/not-found","status":404,"detail":"no",'
                      b'"errors":[{"field":"lines","type":"unknown_sku","message":"A"}]}', True),
    ("409 Conflict", b'{"type":"/problems/reservation-released","status":409,"detail":"released"}', True),
    ("401 Unauthorized", b'{"type":"/problems/unauthorized","status":401,"detail":"not signed by its key"}', False),
    ("403 Forbidden", b'{"type":"/problems/forbidden","status":403,"detail":"may not call"}', False),
    ("404 Not Found", b"<html>no route</html>", False),
])
def test_only_the_catalogs_refusals_of_the_stock_are_final_for_an_order(monkeypatch, status, body, final):
    async def scenario():
        with pytest.raises(peers.PeerRefused if final else ServiceUnavailable):
            await catalog_client.reserve("order-1", [("A", 1)])

    serving(monkeypatch, answering(status, body), scenario, peer="catalog-reserve-stock")


def test_a_peer_url_of_another_scheme_is_502_not_a_500(monkeypatch):
    monkeypatch.setenv(peers.url_variable(PEER), "ftp://127.0.0.1:21")

    async def scenario():
        with pytest.raises(BadGateway, match="UnsupportedProtocol"):
            await peers.call(PEER, "GET", "/internal/products/lookup?skus=A")

    asyncio.run(scenario())
