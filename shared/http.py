"""The one wrapper every HTTP endpoint function wears, and the helpers to parse requests and shape responses.

    @functions_framework.aio.http
    @endpoint("catalog-get-product")
    async def get_product(request, product_id): ...

The wrapper matches the path against the route table (path parameters become keyword arguments), sets the
request id, enforces the body limit, answers every error as problem+json and records metrics and an access log.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import re
import time
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from shared import body_limit, metrics, startup
from shared.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Problem,
    UnsupportedMediaType,
    Unprocessable,
    as_problem,
    validation_errors,
)
from shared.logs import logger, request_id
from shared.routes import route as lookup_route
from shared.service_identity import check_caller, guard_deliveries
from shared.settings import ServerSettings, settings

M = TypeVar("M", bound=BaseModel)
Handler = Callable[..., Awaitable[Response]]


class AnyPathConvertor(PathConvertor):
    """`{path:path}` matching every path: Starlette's stops at a newline (`.*`)."""

    regex = "[\\s\\S]*"


# functions-framework serves a function at `/{path:path}`, a route it builds after importing the function's module
# (which imports this one). With Starlette's own convertor a path holding an encoded newline (`/orders/details/%0A`)
# matched no route and Starlette answered a text/plain 404 without the function; now every path reaches `endpoint`,
# which answers problem+json.
register_url_convertor("path", AnyPathConvertor())
body_limit.install()  # MAX_BODY_BYTES before any function code, CloudEvents included (see shared/body_limit.py)

_log = logger("http")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
PROBLEM_JSON = "application/problem+json"


SLOW_SECONDS = 1.0  # a request at least this slow is always logged


def endpoint(route_name: str) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap an async handler as the function serving the route table entry `route_name`."""
    startup.imported()
    route = lookup_route(route_name)
    measured = _Measured(route_name)

    def decorate(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def serve(request: Request) -> Response:
            current_id = incoming_request_id(request.headers)
            token = request_id.set(current_id)
            started = time.perf_counter()
            try:
                metrics.serve_metrics()
                response = await _dispatch(route, handler, request)
            except Exception as error:  # noqa: BLE001 - every failure must leave as problem+json
                response = _problem_response(error, route_name)
            finally:
                request_id.reset(token)
            elapsed = time.perf_counter() - started
            _set_request_id(response, current_id)
            status, method = response.status_code, request.method
            measured.record(method, status, elapsed)
            if _log.isEnabledFor(logging.INFO) and (status >= 400 or elapsed >= SLOW_SECONDS or _sampled()):
                _log.info("request", extra={"request_id": current_id, "method": method, "path": request_path(request),
                                            "status": status, "duration_ms": round(elapsed * 1000, 2)})
            startup.answered()
            return response

        return serve

    return decorate


class _Measured:
    """One route's metric children, looked up once: `labels()` costs a lock and a hash on every call."""

    def __init__(self, route_name: str):
        self.route_name = route_name
        self.latency = metrics.LATENCY.labels(route_name)
        self.counters: dict[tuple[str, int], Any] = {}  # (method, status) -> its counter

    def record(self, method: str, status: int, elapsed: float) -> None:
        counter = self.counters.get((method, status))
        if counter is None:
            counter = self.counters[(method, status)] = metrics.REQUESTS.labels(self.route_name, method, str(status))
        counter.inc()
        self.latency.observe(elapsed)


def _set_request_id(response: Response, current_id: str) -> None:
    """`response.headers["X-Request-Id"] = current_id` without building a MutableHeaders per request."""
    raw = response.raw_headers
    for index, (name, _) in enumerate(raw):
        if name == b"x-request-id":
            del raw[index]
            break
    raw.append((b"x-request-id", current_id.encode("latin-1")))


# A path Starlette's URL would hand back unchanged: it escapes `?`, `#` and `\\`, and urlsplit drops tabs and line
# breaks; only other paths pay for building the URL (a urlunsplit and urlsplit per request).
_PLAIN_PATH = re.compile(r"/(?!/)[^?#\\\t\r\n]*")


def request_path(request: Request) -> str:
    """`request.url.path`, without building the URL when the path is plain (nearly always)."""
    path = request.scope["path"]
    return path if _PLAIN_PATH.fullmatch(path) else request.url.path


def _sampled() -> bool:
    share = settings(ServerSettings).access_log_sample
    return share >= 1.0 or (share > 0.0 and random.random() < share)


def incoming_request_id(headers) -> str:
    """The caller's X-Request-Id when it is safe to log and echo, else a new one."""
    incoming = headers.get("x-request-id", "")
    return incoming if _SAFE_REQUEST_ID.fullmatch(incoming) else os.urandom(16).hex()  # uuid4().hex's form, 5x cheaper


def event_endpoint(route_name: str):
    """Wrap an async CloudEvent handler: metrics, logs with the event id, and the broker's retry contract.

    A permanently bad event (a 4xx problem) is answered 4xx so the broker sends it to the dead-letter sink
    instead of retrying; a 5xx problem (503: a store, a peer, a delivery in flight) with its status and
    Retry-After, and anything else with 500: the broker retries both.
    """
    startup.imported()
    guard_deliveries(route_name)  # only events with a valid sender token reach `serve`
    measured = _Measured(route_name)

    def decorate(handler):
        @functools.wraps(handler)
        async def serve(event):
            metrics.serve_metrics()
            token = request_id.set(event["id"])
            started = time.perf_counter()
            outcome = 200
            try:
                await handler(event)
            except Exception as error:
                problem = as_problem(error)
                outcome = problem.status if problem else 500
                if problem is None:
                    _log.exception("event failed; the broker will retry", extra={"event_type": event["type"]})
                    raise
                if problem.status < 500:
                    _log.warning("event rejected", extra={"event_type": event["type"], "detail": problem.detail})
                else:  # a store or a peer out, a delivery in flight: 503 and its Retry-After, as the problem says
                    _log.warning("event not processed yet; the broker will retry",
                                 extra={"event_type": event["type"], "detail": problem.detail})
                raise HTTPException(problem.status, detail=problem.detail, headers=problem.headers or None) from None
            finally:
                elapsed = time.perf_counter() - started
                measured.record("POST", outcome, elapsed)
                _log.info("event", extra={"event_type": event["type"], "source": event["source"], "status": str(outcome),
                                          "duration_ms": round(elapsed * 1000, 2)})
                request_id.reset(token)
                startup.answered()

        return serve

    return decorate


async def _dispatch(route, handler: Handler, request: Request) -> Response:
    check_caller(route, request.headers)  # internal routes: 401/403 unless a listed caller's service token
    path = request_path(request)
    params = route.match(path)
    if params is None:
        raise NotFound(f"No such resource: {path}")
    if request.method != route.method:
        raise MethodNotAllowed(f"Use {route.method} for {route.path}", headers={"Allow": route.method})
    return await handler(request, **params)


def _problem_response(error: Exception, route_name: str) -> Response:
    problem = as_problem(error)
    if problem is None:
        _log.exception("unhandled error", extra={"route": route_name})
        problem = Problem("The server failed to handle this request; it has been logged")
    elif problem.status >= 500:
        _log.warning("unavailable", extra={"route": route_name, "detail": problem.detail, "cause": repr(error.__cause__ or error)})
    return problem_response(problem)


def problem_response(problem: Problem) -> Response:
    body = problem.body()
    body["request_id"] = request_id.get()
    return Response(json.dumps(body), status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers)


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The raw body, refused past `limit` (default MAX_BODY_BYTES) without reading it all."""
    limit = limit or settings(ServerSettings).max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise PayloadTooLarge(f"The body may be at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body may be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body(model: type[M], request: Request) -> M:
    """The JSON body validated as `model`: 415 if not JSON, 400 if malformed, 422 with field errors if invalid."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType("Send the body as application/json")
    raw = await read_body(request)
    if not raw.strip():
        raise BadRequest("The request body is empty; send a JSON object")
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        errors = error.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise BadRequest(f"The body is not valid JSON: {errors[0]['ctx'].get('error', '')}".strip()) from None
        raise Unprocessable("The request body is invalid", errors=validation_errors(errors, "body")) from None


def parse_query(model: type[M], request: Request) -> M:
    """The query string validated as `model` (repeated keys become lists; unknown keys are refused)."""
    values: dict[str, Any] = {}
    query = request.scope["query_string"]  # parsed as Starlette's QueryParams would, without building one
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if query else ():
        if key in values:
            previous = values[key]
            values[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            values[key] = value
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise Unprocessable("The query parameters are invalid",
                            errors=validation_errors(error.errors(include_url=False), "query")) from None


# A keyed write's repeat: not applied again (RFC draft "The Idempotency-Key HTTP Header Field" leaves this to us).
REPLAYED = {"Idempotent-Replayed": "true"}


def json_response(body: BaseModel | dict | list, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON response; an error status (a replayed refusal, say) goes out as problem+json."""
    content = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body, default=str)
    media_type = PROBLEM_JSON if status >= 400 else "application/json"
    return Response(content, status_code=status, media_type=media_type, headers=headers)


def no_content() -> Response:
    return Response(status_code=204)
