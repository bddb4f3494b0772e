"""MAX_BODY_BYTES for every request a function takes, enforced before any of its code runs.

functions-framework reads a CloudEvent's whole body itself (`await request.body()`) before it calls the function,
so a limit inside the function comes too late. This ASGI layer wraps each function's app: a declared length over
the limit is refused without reading a byte, and a body sent in chunks is refused as soon as the bytes read pass
it, with 413 problem+json. The body is kept in memory only up to the limit, then handed on unchanged. A request
without `Transfer-Encoding` is handed on at once: the server reads no more than its declared length (none: no body).

functions-framework has no hook for middleware: `install` wraps its app factory, which it looks up when it builds
the app, after importing the function's module (which imports this one through shared.http).
"""

from __future__ import annotations

import json

import functions_framework.aio
from starlette.datastructures import Headers

from shared.errors import PayloadTooLarge, Problem
from shared.settings import ServerSettings, settings


class BodyLimit:
    """An ASGI app refusing request bodies over MAX_BODY_BYTES with 413, before `app` sees the request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            limit = settings(ServerSettings).max_body_bytes
        except Problem:  # misconfigured: the function answers 503 itself
            await self.app(scope, receive, send)
            return
        declared = chunked = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = value
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(limit, scope, send)
            return
        if chunked is None:  # no body (a GET) or a declared one within the limit: the server reads no more than that
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            size += len(message.get("body", b""))
            if size > limit:
                await _refuse(limit, scope, send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)


def _replay(messages: list[dict], receive):
    async def replayed() -> dict:
        return messages.pop(0) if messages else await receive()

    return replayed


async def _refuse(limit: int, scope, send) -> None:
    from shared.http import incoming_request_id  # shared.http installs this module: imported late, not circular

    problem = PayloadTooLarge(f"The body may be at most {limit} bytes")
    current_id = incoming_request_id(Headers(scope=scope))
    body = json.dumps(problem.body() | {"request_id": current_id}).encode()
    await send({"type": "http.response.start", "status": problem.status,
                "headers": [(b"content-type", b"application/problem+json"), (b"x-request-id", current_id.encode()),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def install() -> None:
    """Wrap every app functions-framework builds in this process (once)."""
    build = functions_framework.aio._create_asgi_app_with_function
    if getattr(build, "bounded", False):
        return

    def bounded_app(*args, **kwargs):
        return BodyLimit(build(*args, **kwargs))

    bounded_app.bounded = True
    functions_framework.aio._create_asgi_app_with_function = bounded_app
