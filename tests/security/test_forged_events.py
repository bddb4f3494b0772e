"""Events are taken only from their senders: every event consumer, generated from the route table, refuses a
delivery without a valid sender token (401) or from a sender it does not expect (403), and processes one with
it. A forged order event sends nothing to anyone; the local broker takes events only from publishing functions."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import pytest

from local.broker import BROKER_PATH
from local.environment import event_audience, event_senders, sender_token
from local.service_keys import EVENTING_KEY_ID, LOCAL_EVENTING_ISSUER, new_private_pem, process_keys
from shared.event_types import ORDER_CREATED
from shared.routes import ROUTES, Route
from shared.service_identity import SERVICE_TOKEN_HEADER
from tests.support import ADMIN, assert_problem, unique

CONSUMERS = [route for route in ROUTES if route.signature == "cloudevent"]
EVENT_TYPES = {"notify-order-created": ORDER_CREATED, "notify-dead-letter": ORDER_CREATED}


def order_data(order_id: str, email: str) -> dict:
    return {"order_id": order_id, "user_id": "mallory", "status": "paid", "currency": "EUR", "total_price": "1.00",
            "contact": {"email": email},
            "items": [{"product_sku": "LAMP-1", "product_name": "Lamp", "quantity": 1, "price_at_purchase": "1.00",
                       "line_total": "1.00", "currency": "EUR"}]}


def deliver(url: str, route: Route, token: str | None, data: dict | None = None) -> httpx.Response:
    headers = {"ce-specversion": "1.0", "ce-id": str(uuid.uuid4()), "ce-source": "/orders",
               "ce-type": EVENT_TYPES.get(route.name, "dev.knative.sources.ping"), "ce-subject": "order",
               "content-type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    body = data or order_data(str(uuid.uuid4()), f"{unique('victim')}@example.com")
    return httpx.post(url, headers=headers, json=body, timeout=30)


def issued(subject: str, audience: str, key: str | None = None, expires_in: int = 300, **extra) -> str:
    now = int(time.time())
    return jwt.encode({"iss": LOCAL_EVENTING_ISSUER, "sub": subject, "aud": audience, "iat": now,
                       "exp": now + expires_in, **extra},
                      key or process_keys().private_key("eventing"), algorithm="ES256",
                      headers={"kid": EVENTING_KEY_ID})


def other_sender(route: Route) -> str:
    return next(sender for other in CONSUMERS for sender in event_senders(other)
                if sender not in event_senders(route))


def url_of(shop, route: Route) -> str:
    return shop.functions[route.name].url


@pytest.mark.parametrize("route", CONSUMERS, ids=lambda route: route.name)
def test_a_delivery_without_a_sender_token_is_401(shop, route):
    assert_problem(deliver(url_of(shop, route), route, None), 401)


@pytest.mark.parametrize("route", CONSUMERS, ids=lambda route: route.name)
def test_a_sender_token_from_another_issuer_key_is_401(shop, route):
    forged = issued(event_senders(route)[0], event_audience(route.name), key=new_private_pem("p256"))

    assert_problem(deliver(url_of(shop, route), route, forged), 401)


@pytest.mark.parametrize("route", CONSUMERS, ids=lambda route: route.name)
def test_a_sender_token_for_another_audience_is_401(shop, route):
    elsewhere = issued(event_senders(route)[0], event_audience("catalog-get-product"))

    assert_problem(deliver(url_of(shop, route), route, elsewhere), 401)


@pytest.mark.parametrize("route", CONSUMERS, ids=lambda route: route.name)
def test_an_expired_sender_token_is_401(shop, route):
    expired = issued(event_senders(route)[0], event_audience(route.name), expires_in=-60)

    assert "expired" in assert_problem(deliver(url_of(shop, route), route, expired), 401)["detail"]


@pytest.mark.parametrize("route", CONSUMERS, ids=lambda route: route.name)
def test_a_valid_token_of_a_sender_the_consumer_does_not_expect_is_403(shop, route):
    stranger = issued(other_sender(route), event_audience(route.name))

    assert_problem(deliver(url_of(shop, route), route, stranger), 403)


@pytest.mark.parametrize("route", CONSUMERS, ids=lambda route: route.name)
def test_a_delivery_from_the_expected_sender_is_processed(shop, route):
    response = deliver(url_of(shop, route), route, sender_token({}, route))

    assert response.status_code == 200, response.text


def test_a_forged_order_event_sends_nothing_and_a_sent_one_is_recorded(shop, gateway):
    route = next(route for route in CONSUMERS if route.name == "notify-order-created")
    forged_order, real_order = str(uuid.uuid4()), str(uuid.uuid4())

    forged = deliver(url_of(shop, route), route, None, order_data(forged_order, "victim@example.com"))
    real = deliver(url_of(shop, route), route, sender_token({}, route), order_data(real_order, "buyer@example.com"))

    assert forged.status_code == 401 and real.status_code == 200
    assert gateway.get("/notifications", params={"order_id": forged_order}, headers=ADMIN).json()["items"] == []
    assert len(gateway.get("/notifications", params={"order_id": real_order}, headers=ADMIN).json()["items"]) == 1


def publish(shop, token_headers: dict[str, str], order_id: str) -> httpx.Response:
    headers = {"ce-specversion": "1.0", "ce-id": str(uuid.uuid4()), "ce-source": "/orders", "ce-type": ORDER_CREATED,
               "ce-subject": "order", "content-type": "application/json", **token_headers}
    return httpx.post(shop.url + BROKER_PATH, headers=headers, json=order_data(order_id, "buyer@example.com"),
                      timeout=30)


def test_the_local_broker_takes_events_only_from_publishing_functions(shop, gateway):
    unsigned, stranger, publisher = (str(uuid.uuid4()) for _ in range(3))

    assert_problem(publish(shop, {}, unsigned), 401)
    assert_problem(publish(shop, {SERVICE_TOKEN_HEADER: process_keys().service_token("catalog-get-product", "broker")},
                           stranger), 403)
    delivered = publish(shop, {SERVICE_TOKEN_HEADER: process_keys().service_token("orders-create-order", "broker")},
                        publisher)

    assert delivered.status_code == 200, delivered.text
    for refused in (unsigned, stranger):
        assert gateway.get("/notifications", params={"order_id": refused}, headers=ADMIN).json()["items"] == []
    assert len(gateway.get("/notifications", params={"order_id": publisher}, headers=ADMIN).json()["items"]) == 1


@pytest.mark.parametrize("route", CONSUMERS, ids=lambda route: route.name)
def test_a_sender_token_issued_to_live_over_a_day_or_without_iat_is_401(shop, route):
    sender, audience = event_senders(route)[0], event_audience(route.name)
    now = int(time.time())
    lasting = issued(sender, audience, expires_in=86400 + 60)
    undated = jwt.encode({"iss": LOCAL_EVENTING_ISSUER, "sub": sender, "aud": audience, "exp": now + 300},
                         process_keys().private_key("eventing"), algorithm="ES256", headers={"kid": EVENTING_KEY_ID})
    stringly = issued(sender, audience, iat=str(now))

    assert "at most 86400 s" in assert_problem(deliver(url_of(shop, route), route, lasting), 401)["detail"]
    assert_problem(deliver(url_of(shop, route), route, undated), 401)
    assert_problem(deliver(url_of(shop, route), route, stringly), 401)
    assert deliver(url_of(shop, route), route, issued(sender, audience, expires_in=86400)).status_code == 200
