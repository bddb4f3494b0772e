"""The local stand-in for the cluster's HTTPRoutes: one port, public paths routed to functions by the route table.

    GATEWAY_UPSTREAMS='{"catalog-get-product": "http://127.0.0.1:8103", ...}' python -m local.gateway

GET /_local/functions answers with each function's state (running, starting, backing-off, failed-to-start), as
the runner writes it to the file named by LOCAL_STATE_FILE: the runner supervises, the gateway only shows.

With SCALING=knative the gateway is also Knative's activator and autoscaler (local/scaling/): it starts, scales
and stops each function's replicas itself, answers for each function on that function's own port (its Service
address, which the other functions call) besides the public one, and shows the scaling at GET /_local/scaling,
as Prometheus metrics at GET /_local/metrics.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path

import httpx

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from local.limits import RouteLimits
from local.scaling.revision import Overloaded
from local.scaling.scaler import Scaler
from shared.errors import BadGateway, BadRequest, MethodNotAllowed, NotFound, Problem, ServiceUnavailable
from shared.http import incoming_request_id, problem_response, read_body
from shared.logs import logger, request_id
from shared.routes import public_routes
from local import broker

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = Path(os.environ.get("OPENAPI_PATH", ROOT / "openapi.json"))
MAX_BODY = 1024 * 1024  # the functions enforce their own, smaller limit; this only protects the gateway
KEEPALIVE_SECONDS = 1.0
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}

_HOP_BY_HOP_RAW = {name.encode() for name in HOP_BY_HOP}


def _forwarded(request: Request) -> list[tuple[bytes, bytes]]:
    """The request's end-to-end headers as received, byte for byte: a value outside ASCII (which httpx would
    refuse to encode from text) reaches the function, which answers it."""
    return [(name, value) for name, value in request.headers.raw if name.lower() not in _HOP_BY_HOP_RAW]


_log = logger("gateway")


class _Refused(Problem):
    """A refusal of Starlette's own routing (a method /openapi.json does not take, say), as problem+json."""

    def __init__(self, status: int, detail: str, headers: dict | None = None):
        super().__init__(detail, headers=headers)
        self.status, self.title = status, HTTPStatus(status).phrase
        self.slug = self.title.lower().replace(" ", "-")


def _answer(request: Request, problem: Problem) -> Response:
    """The gateway's own answer: problem+json with a request id, like every function's."""
    current = incoming_request_id(request.headers)
    token = request_id.set(current)
    try:
        response = problem_response(problem)
    finally:
        request_id.reset(token)
    response.headers["X-Request-Id"] = current
    return response


async def _http_error(request: Request, error: HTTPException) -> Response:
    return _answer(request, _Refused(error.status_code, str(error.detail), dict(error.headers or {})))


async def _server_error(request: Request, error: Exception) -> Response:
    _log.exception("gateway error", extra={"path": request.url.path})
    return _answer(request, Problem("The gateway failed to handle this request; it has been logged"))


class _EveryMethod:
    """An endpoint as an ASGI app, so that its route takes every method (a function endpoint takes GET only) and
    the proxy answers 405 itself, with the path's `Allow` from the route table."""

    def __init__(self, endpoint):
        self.endpoint = endpoint

    async def __call__(self, scope, receive, send) -> None:
        response = await self.endpoint(Request(scope, receive))
        await response(scope, receive, send)


def _closing(client: httpx.AsyncClient, scaler: Scaler | None = None):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        if scaler is not None:
            await scaler.start()
        try:
            yield
        finally:
            if scaler is not None:
                await scaler.close()
            await client.aclose()

    return lifespan


def _timestamp(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds") if epoch is not None else None


def functions_state(path: Path) -> dict:
    """The runner's state file, with times as ISO 8601 and the seconds left before each next retry."""
    content = json.loads(path.read_text())
    now = time.time()
    for state in content["functions"].values():
        retry = state["next_retry_at"]
        state["next_retry_in_seconds"] = round(max(0.0, retry - now), 3) if retry is not None else None
        state["next_retry_at"], state["since"] = _timestamp(retry), _timestamp(state["since"])
    content["updated_at"] = _timestamp(content["updated_at"])
    return content


def create_gateway(upstreams: dict[str, str], state_file: Path | None = None, scaler: Scaler | None = None,
                   services: dict[int, str] | None = None) -> Starlette:
    """The gateway to `upstreams` (name -> URL); with a `scaler`, to its replicas, and to each function of
    `services` (port -> name) on that port."""
    served = scaler.revisions if scaler is not None else upstreams
    routes = [route for route in public_routes() if route.name in served]
    # Idle connections expire before the functions' own keep-alive closes them (2 s: gunicorn's default, which its
    # uvicorn worker takes): a connection the function is closing must never carry the next request (ReadError).
    limits = RouteLimits(routes)
    client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0),
                               limits=httpx.Limits(max_connections=200, max_keepalive_connections=100,
                                                   keepalive_expiry=KEEPALIVE_SECONDS))

    async def forward(name: str, method: str, target: str, headers: list, body: bytes) -> httpx.Response:
        if scaler is None:
            return await client.request(method, upstreams[name] + target, headers=headers, content=body)
        return await scaler.forward(name, lambda base: client.request(method, base + target, headers=headers,
                                                                      content=body))

    async def proxy(request: Request) -> Response:
        path = request.url.path
        candidates = [route for route in routes if route.match(path) is not None]
        if not candidates:
            return _answer(request, NotFound(f"No endpoint serves {path}"))
        chosen = next((route for route in candidates if route.method == request.method), None)
        if chosen is None:
            allowed = ", ".join(sorted({route.method for route in candidates}))
            return _answer(request, MethodNotAllowed(f"{path} accepts {allowed}", headers={"Allow": allowed}))
        try:
            limits.check(chosen)
            body = await read_body(request, MAX_BODY)  # refused while it streams in, chunked or not
        except Problem as refusal:
            return _answer(request, refusal)
        return await _relay(request, chosen.name,
                            forward(chosen.name, request.method, _target(request), _forwarded(request), body))

    async def service(request: Request) -> Response:
        """A function's own port (its Service address): every path goes to that function, as in the cluster."""
        name = services[request.scope["server"][1]]
        try:
            body = await read_body(request, MAX_BODY)  # refused while it streams in, chunked or not
        except Problem as refusal:
            return _answer(request, refusal)
        return await _relay(request, name, forward(name, request.method, _target(request), _forwarded(request), body))

    async def openapi(request: Request) -> Response:
        if not OPENAPI.exists():
            return _answer(request, NotFound("openapi.json has not been generated: run `make manifests`"))
        return FileResponse(OPENAPI, media_type="application/json")

    async def local_functions(request: Request) -> Response:
        if state_file is None or not state_file.exists():
            return _answer(request, NotFound("This gateway runs without a runner's state file (LOCAL_STATE_FILE)"))
        return JSONResponse(functions_state(state_file))

    async def local_scaling(request: Request) -> Response:
        if scaler is None:
            return _answer(request, NotFound("This gateway does not scale functions: start it with SCALING=knative"))
        return JSONResponse(scaler.public())

    async def local_metrics(request: Request) -> Response:
        if scaler is None:
            return _answer(request, NotFound("This gateway does not scale functions: start it with SCALING=knative"))
        return Response(generate_latest(scaler.registry), media_type=CONTENT_TYPE_LATEST)

    # The local runner's broker (local.broker), where it gave the gateway one.
    brokers = [StarletteRoute(broker.BROKER_PATH, broker.deliverer(client), methods=["POST"])] \
        if broker.configured() else []
    public = Starlette(routes=[StarletteRoute("/openapi.json", openapi, methods=["GET"]),
                               StarletteRoute("/_local/functions", local_functions, methods=["GET"]),
                               StarletteRoute("/_local/scaling", local_scaling, methods=["GET"]),
                               StarletteRoute("/_local/metrics", local_metrics, methods=["GET"]), *brokers,
                               StarletteRoute("/{path:path}", _EveryMethod(proxy))],
                       exception_handlers={HTTPException: _http_error, Exception: _server_error},
                       lifespan=_closing(client, scaler))
    if not services:
        return public
    by_port = Starlette(routes=[StarletteRoute("/{path:path}", _EveryMethod(service))],
                        exception_handlers={HTTPException: _http_error, Exception: _server_error})
    return _ByPort(public, by_port, set(services))


def _target(request: Request) -> str:
    """The path exactly as received (still percent-encoded), never its decoded form, and the query."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return raw_path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")


async def _relay(request: Request, name: str, sending) -> Response:
    """The function's answer as the gateway's, or the gateway's own problem when there is none."""
    try:
        upstream = await sending
    except httpx.InvalidURL:
        return _answer(request, BadRequest(f"The URL cannot be forwarded: {request.url.path!r}"))
    except httpx.ConnectError:
        return _answer(request, ServiceUnavailable(f"The function {name} is not running"))
    except httpx.HTTPError as error:
        return _answer(request, BadGateway(f"The function {name} failed to answer: {type(error).__name__}"))
    except Overloaded as refused:
        return _answer(request, refused)
    response_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
    return Response(upstream.content, status_code=upstream.status_code, headers=response_headers)


class _ByPort:
    """One app for the public port and the functions' own ports, told apart by the port a request came in on."""

    def __init__(self, public: Starlette, service: Starlette, ports: set[int]):
        self.public, self.service, self.ports = public, service, ports

    async def __call__(self, scope, receive, send) -> None:
        server = scope.get("server") or (None, None)
        app = self.service if scope["type"] == "http" and server[1] in self.ports else self.public
        await app(scope, receive, send)


def main() -> None:
    import uvicorn

    upstreams = json.loads(os.environ["GATEWAY_UPSTREAMS"])
    state_file = Path(os.environ["LOCAL_STATE_FILE"]) if os.environ.get("LOCAL_STATE_FILE") else None
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))
    if os.environ.get("SCALING") != "knative":
        uvicorn.run(create_gateway(upstreams, state_file), host=host, port=port, log_level="warning")
        return
    from local.scaling.run import knative_gateway

    knative_gateway(create_gateway, upstreams, state_file, host, port)


if __name__ == "__main__":
    main()
