"""The cart functions through the gateway, against real Redis and the real catalog functions."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis as redis_sync

from local.processes import free_port
from shared.peers import url_variable
from tests.support import ADMIN, assert_problem, bearer, function_alone, unique


def new_product(gateway, **overrides) -> dict:
    body = {"sku": unique("CART"), "name": "Cart Test Mug", "price": {"amount": "12.50", "currency": "EUR"},
            "brand": "Mugs", "stock_quantity": 50, **overrides}
    response = gateway.post("/products", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def add(gateway, user, sku, quantity=1, headers=None):
    return gateway.post(f"/cart/{user}/items", json={"product_sku": sku, "quantity": quantity},
                        headers=headers or bearer(user))


@pytest.fixture
def user():
    return unique("shopper")


@pytest.fixture(scope="module")
def redis_client(shop_settings):
    client = redis_sync.Redis.from_url(shop_settings["REDIS_URL"], decode_responses=True)
    yield client
    client.close()


def cart_key(shop_settings, user) -> str:
    return f"{shop_settings['REDIS_KEY_PREFIX']}cart:{user}"


def test_never_used_cart_is_empty(gateway, user):
    response = gateway.get(f"/cart/{user}", headers=bearer(user))

    assert response.status_code == 200
    assert response.json() == {"user_id": user, "items": [], "total_items": 0, "total_price": "0.00",
                               "currency": None, "mixed_currencies": False, "priced": True, "updated_at": None}


def test_adding_prices_lines_from_the_catalog_and_quantities_add_up(gateway, user):
    mug = new_product(gateway)
    pot = new_product(gateway, name="Tea Pot", price={"amount": "30.00", "currency": "EUR"})

    add(gateway, user, mug["sku"], 2)
    add(gateway, user, pot["sku"], 1)
    response = add(gateway, user, mug["sku"], 3)

    assert response.status_code == 200, response.text
    cart = response.json()
    lines = {line["product_sku"]: line for line in cart["items"]}
    assert lines[mug["sku"]] == {"product_sku": mug["sku"], "quantity": 5, "name": "Cart Test Mug",
                                 "price_per_item": "12.50", "item_total_price": "62.50", "currency": "EUR",
                                 "available": True}
    assert cart["total_items"] == 6 and cart["total_price"] == "92.50" and cart["currency"] == "EUR"
    assert cart["updated_at"]


def test_twenty_concurrent_adds_end_with_quantity_twenty(gateway, shop, user):
    mug = new_product(gateway)
    headers = bearer(user)

    async def add_one(client):
        return await client.post(f"/cart/{user}/items", json={"product_sku": mug["sku"], "quantity": 1},
                                 headers=headers)

    async def add_twenty():
        async with httpx.AsyncClient(base_url=shop.url, timeout=10) as client:
            return await asyncio.gather(*(add_one(client) for _ in range(20)))

    responses = asyncio.run(add_twenty())

    assert [r.status_code for r in responses] == [200] * 20
    assert gateway.get(f"/cart/{user}", headers=headers).json()["items"][0]["quantity"] == 20


def test_unknown_and_inactive_products_cannot_be_added(gateway, user):
    hidden = new_product(gateway, is_active=False)

    assert_problem(add(gateway, user, "NO-SUCH-SKU"), 404)
    body = assert_problem(add(gateway, user, hidden["sku"]), 422)
    assert "not for sale" in body["detail"]


def test_quantity_above_stock_is_conflict(gateway, user):
    scarce = new_product(gateway, stock_quantity=3)

    assert add(gateway, user, scarce["sku"], 2).status_code == 200
    assert_problem(add(gateway, user, scarce["sku"], 2), 409)
    assert gateway.get(f"/cart/{user}", headers=bearer(user)).json()["items"][0]["quantity"] == 2


def test_a_line_is_capped_at_one_hundred(gateway, user):
    plenty = new_product(gateway, stock_quantity=1000)

    assert add(gateway, user, plenty["sku"], 100).status_code == 200
    body = assert_problem(add(gateway, user, plenty["sku"], 1), 422)
    assert body["errors"][0]["field"] == "body.quantity"


def test_a_cart_holds_at_most_fifty_lines(gateway, user):
    products = [new_product(gateway) for _ in range(51)]
    for product in products[:50]:
        assert add(gateway, user, product["sku"]).status_code == 200

    assert_problem(add(gateway, user, products[50]["sku"]), 422)
    assert add(gateway, user, products[0]["sku"]).status_code == 200  # existing lines still grow


@pytest.mark.parametrize("body", [
    {"product_sku": "X", "quantity": 0}, {"product_sku": "X", "quantity": 101}, {"product_sku": "X", "quantity": "2"},
    {"product_sku": "X", "quantity": 1.5}, {"quantity": 1}, {"product_sku": "bad sku", "quantity": 1},
    {"product_sku": "X", "quantity": 1, "price": "0.01"}, [],
])
def test_invalid_add_bodies_are_rejected(gateway, user, body):
    assert_problem(gateway.post(f"/cart/{user}/items", json=body, headers=bearer(user)), 422)


def test_malformed_json_is_bad_request(gateway, user):
    response = gateway.post(f"/cart/{user}/items", content=b'{"product_sku":', headers={
        **bearer(user), "Content-Type": "application/json"})

    assert_problem(response, 400)


def test_set_quantity_replaces_it_and_checks_stock(gateway, user):
    mug = new_product(gateway, stock_quantity=10)
    add(gateway, user, mug["sku"], 4)

    response = gateway.put(f"/cart/{user}/items/{mug['sku']}", json={"quantity": 7}, headers=bearer(user))

    assert response.status_code == 200
    assert response.json()["items"][0]["quantity"] == 7
    assert_problem(gateway.put(f"/cart/{user}/items/{mug['sku']}", json={"quantity": 11}, headers=bearer(user)), 409)
    assert_problem(gateway.put(f"/cart/{user}/items/{mug['sku']}", json={"quantity": 0}, headers=bearer(user)), 422)
    assert_problem(gateway.put(f"/cart/{user}/items/NOT-THERE", json={"quantity": 1}, headers=bearer(user)), 404)


def test_removing_lines(gateway, user):
    mug, pot = new_product(gateway), new_product(gateway)
    add(gateway, user, mug["sku"])
    add(gateway, user, pot["sku"])

    response = gateway.delete(f"/cart/{user}/items/{mug['sku']}", headers=bearer(user))

    assert response.status_code == 200
    assert [line["product_sku"] for line in response.json()["items"]] == [pot["sku"]]
    assert_problem(gateway.delete(f"/cart/{user}/items/{mug['sku']}", headers=bearer(user)), 404)
    assert gateway.delete(f"/cart/{user}/items/{pot['sku']}", headers=bearer(user)).json()["items"] == []


def test_clearing_the_cart(gateway, user):
    add(gateway, user, new_product(gateway)["sku"])

    response = gateway.delete(f"/cart/{user}", headers=bearer(user))

    assert response.status_code == 204 and response.content == b""
    assert gateway.get(f"/cart/{user}", headers=bearer(user)).json()["items"] == []


def test_prices_are_read_at_read_time_and_vanished_products_are_excluded(gateway, user):
    mug, pot = new_product(gateway), new_product(gateway, price={"amount": "5.00", "currency": "EUR"})
    add(gateway, user, mug["sku"], 2)
    add(gateway, user, pot["sku"], 1)

    gateway.patch(f"/products/{mug['id']}", json={"price": {"amount": "10.00", "currency": "EUR"}}, headers=ADMIN)
    gateway.patch(f"/products/{pot['id']}", json={"is_active": False}, headers=ADMIN)
    cart = gateway.get(f"/cart/{user}", headers=bearer(user)).json()

    lines = {line["product_sku"]: line for line in cart["items"]}
    assert lines[mug["sku"]]["price_per_item"] == "10.00"
    assert lines[pot["sku"]]["available"] is False and lines[pot["sku"]]["item_total_price"] is None
    assert cart["total_price"] == "20.00" and cart["total_items"] == 3


def test_mixed_currencies_are_not_added_up(gateway, user):
    add(gateway, user, new_product(gateway)["sku"])
    add(gateway, user, new_product(gateway, price={"amount": "9.99", "currency": "USD"})["sku"])

    cart = gateway.get(f"/cart/{user}", headers=bearer(user)).json()

    assert cart["mixed_currencies"] is True
    assert cart["total_price"] is None and cart["currency"] is None


def test_customers_touch_only_their_own_cart_and_admins_may_read_any(gateway, user):
    mug = new_product(gateway)

    assert_problem(gateway.get(f"/cart/{user}"), 401)
    assert_problem(gateway.get(f"/cart/{user}", headers=bearer("someone-else")), 403)
    assert_problem(add(gateway, user, mug["sku"], headers=bearer("someone-else")), 403)
    assert_problem(add(gateway, user, mug["sku"], headers=ADMIN), 403)
    assert gateway.get(f"/cart/{user}", headers=ADMIN).status_code == 200


def test_invalid_user_ids_are_rejected(gateway):
    assert_problem(gateway.get("/cart/%20bad%20id", headers=bearer(" bad id")), 422)


def test_ttl_is_set_and_refreshed_on_every_write(gateway, user, shop_settings, redis_client):
    mug = new_product(gateway)
    add(gateway, user, mug["sku"])
    key = cart_key(shop_settings, user)
    assert 7 * 24 * 3600 - 60 < redis_client.ttl(key) <= 7 * 24 * 3600

    redis_client.expire(key, 100)
    gateway.put(f"/cart/{user}/items/{mug['sku']}", json={"quantity": 2}, headers=bearer(user))

    assert redis_client.ttl(key) > 7 * 24 * 3600 - 60
    assert redis_client.hgetall(key)[mug["sku"]] == "2"


def test_redis_down_answers_503(shop_settings, user):
    with function_alone("cart-get-cart", {**shop_settings, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}) as cart:
        response = httpx.get(f"{cart.url}/cart/{user}", headers=bearer(user), timeout=5)

    assert_problem(response, 503)


def test_catalog_down_refuses_adds_but_still_shows_stored_lines(gateway, shop, shop_settings, user):
    mug = new_product(gateway)
    add(gateway, user, mug["sku"], 2)
    no_catalog = {**shop.settings, url_variable("catalog-lookup-products"): f"http://127.0.0.1:{free_port()}"}
    with function_alone("cart-add-item", no_catalog) as adder, function_alone("cart-get-cart", no_catalog) as reader:
        added = httpx.post(f"{adder.url}/cart/{user}/items", json={"product_sku": mug["sku"], "quantity": 1},
                           headers=bearer(user), timeout=5)
        read = httpx.get(f"{reader.url}/cart/{user}", headers=bearer(user), timeout=5)

    assert_problem(added, 503)
    assert read.status_code == 200
    cart = read.json()
    assert cart["priced"] is False and cart["total_price"] is None
    assert cart["items"] == [{"product_sku": mug["sku"], "quantity": 2, "name": None, "price_per_item": None,
                              "item_total_price": None, "currency": None, "available": None}]


def test_cart_metrics_show_activity_and_redis_latency(gateway, shop, user):
    add(gateway, user, new_product(gateway)["sku"])

    text = httpx.get(f"http://127.0.0.1:{shop.function_ports['cart-add-item'][1]}/metrics").text

    assert "shop_cart_active_carts " in text
    assert 'shop_redis_operation_duration_seconds_count{operation="add_item"}' in text
    assert 'shop_cart_writes_total{operation="add_item",outcome="ok"}' in text
