"""Every entry point refuses a body over its limit with 413 problem+json, whether the length is declared or the body
comes in chunks, and serves the next request: each function (its every route from the route table, CloudEvent
functions included) and the local gateway."""

from __future__ import annotations

import re
import select
import socket
import uuid

import httpx
import pytest

from shared.routes import ROUTES, Route, public_routes
from shared.settings import ServerSettings
from local.gateway import MAX_BODY
from local.broker import BROKER_PATH
from local.service_keys import process_keys
from shared.routes import BROKER
from shared.service_identity import SERVICE_TOKEN_HEADER
from tests.support import ADMIN, assert_problem

LIMIT = ServerSettings.model_fields["max_body_bytes"].default
CHUNK = 4096


def _target(shop, route: Route) -> tuple[str, str]:
    path = re.sub(r"\{\w+\}", "x", route.path or "/")
    return route.method or "POST", shop.functions[route.name].url + path


def _headers() -> dict[str, str]:
    # Enough for any route to reach its body (a CloudEvent's attributes, a token, an idempotency key).
    return {**ADMIN, "content-type": "application/json", "idempotency-key": uuid.uuid4().hex,
            "ce-specversion": "1.0", "ce-type": "com.example.test", "ce-source": "/tests", "ce-id": uuid.uuid4().hex}


def _chunks(total: int):
    sent = 0
    while sent < total:
        yield b"x" * min(CHUNK, total - sent)
        sent += CHUNK


def _still_serves(method: str, url: str) -> None:
    answer = httpx.request(method, url, headers=_headers(), content=b"{}", timeout=10)
    assert answer.status_code != 413 and answer.status_code < 500 or answer.status_code == 503, answer.text


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_a_declared_length_over_the_limit_is_refused_before_any_function_code(shop, route):
    method, url = _target(shop, route)
    refused = httpx.request(method, url, headers=_headers(), content=b"x" * (LIMIT + 1), timeout=10)
    body = assert_problem(refused, 413)
    assert str(LIMIT) in body["detail"] and body["request_id"] == refused.headers["x-request-id"]
    _still_serves(method, url)


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(shop, route):
    method, url = _target(shop, route)
    refused = httpx.request(method, url, headers=_headers(), content=_chunks(LIMIT + CHUNK), timeout=10)
    assert "content-length" not in refused.request.headers
    assert_problem(refused, 413)
    _still_serves(method, url)


def test_a_declared_body_over_the_gateway_limit_is_refused_by_the_gateway(gateway):
    refused = gateway.post("/orders", content=b"x" * (MAX_BODY + 1), headers=_headers())
    assert "payload-too-large" in assert_problem(refused, 413)["type"]
    assert gateway.get("/products").status_code == 200


def test_a_chunked_body_over_the_gateway_limit_is_refused_while_it_streams(gateway):
    refused = gateway.post("/orders", content=_chunks(MAX_BODY + CHUNK), headers=_headers())
    assert "content-length" not in refused.request.headers
    assert_problem(refused, 413)
    assert gateway.get("/products").status_code == 200


@pytest.mark.parametrize("route", [route for route in public_routes() if route.request is not None],
                         ids=lambda route: route.name)
def test_a_body_under_the_gateway_limit_but_over_the_function_limit_is_refused_by_the_function(gateway, route):
    refused = gateway.request(route.method, re.sub(r"\{\w+\}", "x", route.path), headers=_headers(),
                              content=_chunks(LIMIT + CHUNK))
    assert_problem(refused, 413)


def _answer_before_the_body_ends(url: str, method: str, path: str, headers: dict[str, str],
                                 give_up_after: int = 64 * 1024 * 1024) -> tuple[bytes, int]:
    """Stream a chunked body that never ends; (the status line and headers answered, bytes sent by then). A server
    that reads a whole body before it checks its size never answers: this stops after `give_up_after` bytes."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    head = f"{method} {path} HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
    sent = 0
    with socket.create_connection((host, port), timeout=30) as connection:
        connection.sendall(head.encode())
        while sent < give_up_after:
            if select.select([connection], [], [], 0)[0]:
                return connection.recv(65536), sent
            try:
                connection.sendall(chunk)
            except OSError:  # the server answered and closed while we were sending: read what it said
                break
            sent += CHUNK
        return connection.recv(65536), sent


def test_the_gateway_refuses_an_endless_body_once_it_passes_the_limit(gateway):
    answer, sent = _answer_before_the_body_ends(str(gateway.base_url), "POST", "/orders", _headers())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]  # answered while the body was still coming
    assert sent < 64 * 1024 * 1024


@pytest.mark.parametrize("name", ["notify-order-created", "orders-create-order"])
def test_a_function_refuses_an_endless_body_once_it_passes_the_limit(shop, name):
    answer, sent = _answer_before_the_body_ends(shop.functions[name].url, "POST", "/orders", _headers())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]  # answered while the body was still coming
    assert sent < 64 * 1024 * 1024


def test_the_local_broker_refuses_an_endless_event_from_a_publisher_once_it_passes_the_limit(gateway):
    # Only a publisher reaches it (its service token, audience `broker`); even so it never buffers a body past the
    # subscriber's limit before refusing it.
    publisher = process_keys().service_token("orders-outbox-relay", BROKER)
    answer, sent = _answer_before_the_body_ends(str(gateway.base_url), "POST", BROKER_PATH,
                                                {**_headers(), SERVICE_TOKEN_HEADER: publisher})
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]  # answered while the body was still coming
    assert sent < 64 * 1024 * 1024


def test_max_body_bytes_set_lower_is_the_functions_limit(shop):
    from tests.support import function_alone

    with function_alone("catalog-create-product", {**shop.settings, "MAX_BODY_BYTES": "1024"}) as function:
        url = function.url + "/products"
        refused = httpx.post(url, headers=_headers(), content=b"x" * 1025, timeout=10)
        under = httpx.post(url, headers=_headers(), content=b"{}", timeout=10)

    assert "1024" in assert_problem(refused, 413)["detail"]
    assert_problem(under, 422)  # read and validated: within the limit
