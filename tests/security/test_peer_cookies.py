"""Calls between functions carry no cookies: what one peer sets is never sent on a later call (which may be made
for another user), and httpx does not spend a cookie-jar pass on every response."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shared import peers
from shared.peer_client import PeerClient


def test_a_cookie_a_peer_sets_is_never_sent_on_a_later_call():
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.headers.get("Cookie"))
            self.send_response(200)
            self.send_header("Set-Cookie", "session=of-another-user; Path=/")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"

    async def two_calls() -> PeerClient:
        client = peers.client()
        for _ in range(2):
            assert (await client.get(url)).status_code == 200
        return client

    try:
        client = asyncio.run(two_calls())
    finally:
        server.shutdown()
    assert isinstance(client, PeerClient)
    assert seen == [None, None]
    assert not client.cookies


def test_no_code_can_put_a_cookie_into_the_jar_every_peer_client_shares():
    client = PeerClient()
    for put in (lambda: client.cookies.set("session", "alice"), lambda: client.cookies.update({"session": "alice"}),
                lambda: client.cookies.__setitem__("session", "alice")):
        try:
            put()
        except TypeError:
            pass
        else:
            raise AssertionError("a cookie was accepted")
    assert not list(PeerClient().cookies.jar)
