"""Every internal route, generated from the route table, answers only its listed callers: a missing, badly
signed, expired or wrongly addressed service token is 401, a valid token of an unlisted function 403, and each
listed caller gets through. The functions run for real (the session's shop), nothing is mocked."""

from __future__ import annotations

import json
import re
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from local.service_keys import new_private_pem, process_keys, public_pem
from shared.errors import Forbidden, Unauthorized
from shared.routes import PLATFORM_CALLERS, ROUTES, ROUTES_BY_NAME, Route
from shared.service_identity import (SERVICE_ALGORITHM, SERVICE_TOKEN_HEADER, SERVICE_TOKEN_SECONDS, function_callers,
                                     needs_service_token)
from tests.support import assert_problem

GUARDED = [route for route in ROUTES if needs_service_token(route)]
# A body each guarded route accepts as well-formed, so that a listed caller's answer comes from the function.
BODIES = {
    "catalog-reserve-stock": lambda: {"reservation_id": str(uuid.uuid4()),
                                      "lines": [{"sku": "NO-SUCH", "quantity": 1}]},
    "cart-remove-ordered": lambda: {"lines": [{"product_sku": "NO-SUCH", "quantity": 1}]},
}


def test_the_guarded_routes_are_exactly_the_internal_http_routes_called_by_functions():
    assert {route.name for route in GUARDED} == {
        "catalog-lookup-products", "catalog-reserve-stock", "catalog-release-stock", "catalog-confirm-stock",
        "cart-remove-ordered"}


def request(shop, route: Route, token: str | None) -> httpx.Response:
    path = re.sub(r"\{(\w+)\}", lambda match: "user-1" if match[1] == "user_id" else str(uuid.uuid4()), route.path)
    headers = {SERVICE_TOKEN_HEADER: token} if token is not None else {}
    body = BODIES.get(route.name)
    return httpx.request(route.method, shop.functions[route.name].url + path, headers=headers, timeout=10,
                         params={"skus": "NO-SUCH"} if route.method == "GET" else None,
                         json=body() if body else None)


def signed(claims: dict, key: str) -> str:
    return jwt.encode(claims, key, algorithm=SERVICE_ALGORITHM)


def claims(caller: str, audience: str, expires_in: int = 300) -> dict:
    now = int(time.time())
    return {"iss": caller, "sub": caller, "aud": audience, "iat": now, "exp": now + expires_in}


def unlisted(route: Route) -> str:
    return next(other.name for other in ROUTES if other.name not in route.callers and other.name != route.name)


@pytest.mark.parametrize("route", GUARDED, ids=lambda route: route.name)
def test_a_call_without_a_service_token_is_401(shop, route):
    assert_problem(request(shop, route, None), 401)


@pytest.mark.parametrize("route", GUARDED, ids=lambda route: route.name)
def test_a_token_for_another_audience_is_401(shop, route):
    caller = function_callers(route)[0]
    other = next(name for name in ROUTES_BY_NAME if name != route.name)

    assert_problem(request(shop, route, process_keys().service_token(caller, other)), 401)


@pytest.mark.parametrize("route", GUARDED, ids=lambda route: route.name)
def test_an_expired_token_is_401(shop, route):
    caller = function_callers(route)[0]
    expired = signed(claims(caller, route.name, expires_in=-60), process_keys().private_key(caller))

    body = assert_problem(request(shop, route, expired), 401)
    assert "expired" in body["detail"]


@pytest.mark.parametrize("route", GUARDED, ids=lambda route: route.name)
def test_a_token_signed_with_a_key_that_is_not_the_callers_is_401(shop, route):
    caller = function_callers(route)[0]
    forged = signed(claims(caller, route.name), new_private_pem())

    assert_problem(request(shop, route, forged), 401)


@pytest.mark.parametrize("route", GUARDED, ids=lambda route: route.name)
def test_a_token_without_a_signature_is_401(shop, route):
    caller = function_callers(route)[0]
    unsigned = jwt.encode(claims(caller, route.name), None, algorithm="none")

    assert_problem(request(shop, route, unsigned), 401)


@pytest.mark.parametrize("route", GUARDED, ids=lambda route: route.name)
def test_a_valid_token_of_a_function_the_route_does_not_list_is_403(shop, route):
    stranger = unlisted(route)

    body = assert_problem(request(shop, route, process_keys().service_token(stranger, route.name)), 403)
    assert stranger in body["detail"]


@pytest.mark.parametrize("route, caller", [(route, caller) for route in GUARDED for caller in function_callers(route)],
                         ids=lambda value: value if isinstance(value, str) else value.name)
def test_every_listed_caller_is_served(shop, route, caller):
    response = request(shop, route, process_keys().service_token(caller, route.name))

    assert response.status_code not in (401, 403), response.text
    assert response.status_code < 500, response.text


def test_functions_call_each_other_with_tokens_end_to_end(gateway):
    """A cart read prices its lines through catalog-lookup-products, which answers no one without a token: the
    cart function's own service token is what gets it there."""
    from tests.support import ADMIN, bearer, unique

    sku = unique("IDENTITY").upper()
    created = gateway.post("/products", headers=ADMIN, json={
        "sku": sku, "name": "Identity Mug", "price": {"amount": "3.00", "currency": "EUR"}, "brand": "Zero",
        "stock_quantity": 4})
    assert created.status_code == 201, created.text
    user = unique("identity")
    added = gateway.post(f"/cart/{user}/items", json={"product_sku": sku, "quantity": 2}, headers=bearer(user))

    assert added.status_code in (200, 201), added.text
    read = gateway.get(f"/cart/{user}", headers=bearer(user))
    assert read.status_code == 200 and read.json()["priced"] is True, read.text


def test_callers_and_calls_in_the_route_table_agree_both_ways():
    edges = {(route.name, target) for route in ROUTES for target in route.calls}
    listed = {(caller, route.name) for route in ROUTES for caller in route.callers if caller in ROUTES_BY_NAME}
    platform = {caller for route in ROUTES for caller in route.callers if caller not in ROUTES_BY_NAME}

    assert listed == edges
    assert platform <= set(PLATFORM_CALLERS)
    assert all(route.callers for route in ROUTES if route.visibility != "public"), "an internal route nobody calls"


def test_a_caller_signs_one_token_per_target_and_renews_it_shortly_before_it_expires(monkeypatch):
    from shared import service_tokens
    from shared.settings import settings

    monkeypatch.setenv("K_SERVICE", "orders-create-order")
    monkeypatch.setenv("SERVICE_PRIVATE_KEY", process_keys().private_key("orders-create-order"))
    settings.cache_clear()
    service_tokens._private_key.cache_clear()
    monkeypatch.setattr(service_tokens, "_issued", {})
    try:
        first, again = service_tokens.service_token("catalog-reserve-stock"), \
            service_tokens.service_token("catalog-reserve-stock")
        other = service_tokens.service_token("catalog-confirm-stock")
        soon = time.time() + service_tokens.RENEW_BEFORE_SECONDS - 1  # as if it were about to expire
        service_tokens._issued["catalog-reserve-stock"] = ("about-to-expire", soon)
        renewed = service_tokens.service_token("catalog-reserve-stock")
    finally:
        settings.cache_clear()
        service_tokens._private_key.cache_clear()

    assert first == again and other != first
    assert renewed != "about-to-expire"
    assert jwt.decode(renewed, options={"verify_signature": False})["exp"] > soon


def test_while_a_callers_key_is_rotated_tokens_signed_with_either_key_are_accepted(monkeypatch):
    from shared import service_identity

    old, new, stranger = (new_private_pem() for _ in range(3))
    monkeypatch.setenv(service_identity.caller_key_variable("orders-create-order"), public_pem(new) + public_pem(old))
    service_identity.caller_key.cache_clear()
    try:
        for key in (old, new):
            token = signed(claims("orders-create-order", "catalog-reserve-stock"), key)
            assert service_identity.check_caller(ROUTES_BY_NAME["catalog-reserve-stock"],
                                                 {SERVICE_TOKEN_HEADER: token}) == "orders-create-order"
        with pytest.raises(Unauthorized):
            service_identity.check_caller(ROUTES_BY_NAME["catalog-reserve-stock"], {
                SERVICE_TOKEN_HEADER: signed(claims("orders-create-order", "catalog-reserve-stock"), stranger)})
    finally:
        service_identity.caller_key.cache_clear()


@pytest.mark.parametrize("route", GUARDED, ids=lambda route: route.name)
def test_a_token_living_longer_than_a_service_token_may_or_without_iat_is_401(shop, route):
    caller = function_callers(route)[0]
    key = process_keys().private_key(caller)
    long_lived = signed(claims(caller, route.name, expires_in=SERVICE_TOKEN_SECONDS + 3600), key)
    without_iat = signed({name: value for name, value in claims(caller, route.name).items() if name != "iat"}, key)

    assert "at most" in assert_problem(request(shop, route, long_lived), 401)["detail"]
    assert "iat" in assert_problem(request(shop, route, without_iat), 401)["detail"]
    now = int(time.time())  # PyJWT takes numeric strings for iat: they must be refused, not fail with a 500
    stringly = signed({**claims(caller, route.name), "iat": str(now)}, key)
    assert "numbers" in assert_problem(request(shop, route, stringly), 401)["detail"]
    assert request(shop, route, signed(claims(caller, route.name), key)).status_code not in (401, 403)
    just_over = signed(claims(caller, route.name, expires_in=SERVICE_TOKEN_SECONDS + 6), key)  # past the 5 s leeway
    assert "at most" in assert_problem(request(shop, route, just_over), 401)["detail"]


@pytest.fixture
def sender_settings(monkeypatch):
    """This process verifies event sender tokens of a key of its own, for the audience of one consumer."""
    from shared.settings import settings

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "sender-1", "alg": "ES256"}
    for name, value in {"EVENT_SENDER_ISSUER": "https://issuer.test", "EVENT_SENDER_JWKS": json.dumps({"keys": [jwk]}),
                        "EVENT_SENDER_SUBJECTS": "system:serviceaccount:shop:trigger",
                        "EVENT_AUDIENCE": "consumer-audience"}.items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()
    yield key
    settings.cache_clear()


def test_a_token_verified_as_one_kind_is_never_answered_as_the_other_from_a_cache(sender_settings):
    from shared.service_identity import check_sender, verify_service_token

    consumer = next(route for route in ROUTES if route.signature == "cloudevent")
    caller_pem = new_private_pem()
    keys_of = lambda caller: (load_pem_public_key(public_pem(caller_pem).encode()),)  # noqa: E731
    now = int(time.time())
    service_token = signed(claims("orders-create-order", consumer.name), caller_pem)
    sender_token = jwt.encode({"iss": "https://issuer.test", "sub": "system:serviceaccount:shop:trigger",
                               "aud": "consumer-audience", "iat": now, "exp": now + 300}, sender_settings,
                              algorithm="ES256", headers={"kid": "sender-1"})

    assert verify_service_token(service_token, consumer.name, ("orders-create-order",), keys_of)
    assert check_sender(consumer, {"authorization": f"Bearer {sender_token}"})

    with pytest.raises(Unauthorized):
        check_sender(consumer, {"authorization": f"Bearer {service_token}"})
    with pytest.raises((Unauthorized, Forbidden)):
        verify_service_token(sender_token, consumer.name, ("orders-create-order",), keys_of)


def test_event_sender_max_token_seconds_sets_the_longest_sender_token_taken(sender_settings, monkeypatch):
    from shared.service_identity import check_sender
    from shared.settings import settings

    monkeypatch.setenv("EVENT_SENDER_MAX_TOKEN_SECONDS", "3600")
    settings.cache_clear()
    consumer = next(route for route in ROUTES if route.signature == "cloudevent")
    now = int(time.time())

    def lasting(seconds: int) -> dict:
        token = jwt.encode({"iss": "https://issuer.test", "sub": "system:serviceaccount:shop:trigger",
                            "aud": "consumer-audience", "iat": now, "exp": now + seconds}, sender_settings,
                           algorithm="ES256", headers={"kid": "sender-1"})
        return {"authorization": f"Bearer {token}"}

    assert check_sender(consumer, lasting(3600))
    with pytest.raises(Unauthorized, match="at most 3600 s"):
        check_sender(consumer, lasting(3600 + 6))  # past the 5 s leeway
