"""No path answers text/plain: odd paths and methods get problem+json from the function and from the gateway."""

from __future__ import annotations

import httpx
import pytest

from tests.support import ADMIN, assert_problem


@pytest.mark.parametrize("path", ["/orders/details/%0A", "/orders/details/a%0Ab", "/cart/%0C%0A%12",
                                  "/admin/outbox/I%0A/requeue", "/products/%0D%0A"])
def test_a_path_holding_a_newline_is_answered_as_a_problem(gateway, path):
    response = gateway.get(path, headers=ADMIN)

    assert response.status_code in (404, 405, 422), response.text
    assert_problem(response, response.status_code)
    assert response.headers["x-request-id"]


def test_a_function_reached_directly_answers_a_newline_path_itself(shop):
    # What the cluster's router forwards as it came (still percent-encoded): the function must answer it.
    url = shop.functions["orders-get-order"].url

    response = httpx.get(f"{url}/orders/details/%0A", headers=ADMIN)

    assert_problem(response, 404)


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "PUT"])
def test_a_method_a_path_does_not_take_is_405_with_allow(gateway, method):
    response = gateway.request(method, "/products")

    body = assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"
    assert body["request_id"] == response.headers["x-request-id"]


def test_the_gateways_own_answers_carry_the_callers_request_id(gateway):
    response = gateway.get("/no/such/path", headers={"X-Request-Id": "trace-me.1"})

    body = assert_problem(response, 404)
    assert response.headers["x-request-id"] == body["request_id"] == "trace-me.1"
