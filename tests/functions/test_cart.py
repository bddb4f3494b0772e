"""The cart functions through the gateway, against real Redis and the real catalog functions."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time
import uuid

import httpx
import pytest
import redis as redis_sync

from functions.cart.store import active_bucket
from local.processes import free_port, wait_for_port
from shared.peers import url_variable
from tests.support import ADMIN, answer_and_seconds, assert_problem, bearer, function_alone, service_headers, unique


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
    return f"{shop_settings['REDIS_KEY_PREFIX']}cart:{{{user}}}"


def active_index(shop_settings, user) -> str:
    """The sorted set of the active-cart index that holds `user`."""
    return f"{shop_settings['REDIS_KEY_PREFIX']}carts:active:{active_bucket(user)}"


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
    gateway.patch(f"/products/{mug['id']}", json={"is_active": False}, headers=ADMIN)
    body = assert_problem(gateway.put(f"/cart/{user}/items/{mug['sku']}", json={"quantity": 2}, headers=bearer(user)),
                          409)
    assert "no longer for sale" in body["detail"]


def test_removing_lines(gateway, user):
    mug, pot = new_product(gateway), new_product(gateway)
    add(gateway, user, mug["sku"])
    add(gateway, user, pot["sku"])

    response = gateway.delete(f"/cart/{user}/items/{mug['sku']}", headers=bearer(user))

    assert response.status_code == 200
    assert [line["product_sku"] for line in response.json()["items"]] == [pot["sku"]]
    assert_problem(gateway.delete(f"/cart/{user}/items/{mug['sku']}", headers=bearer(user)), 404)
    assert gateway.delete(f"/cart/{user}/items/{pot['sku']}", headers=bearer(user)).json()["items"] == []


def test_the_carts_own_field_is_no_line_to_remove_or_set(gateway, shop_settings, redis_client, user):
    add(gateway, user, new_product(gateway)["sku"])

    assert_problem(gateway.delete(f"/cart/{user}/items/@updated_at", headers=bearer(user)), 404)
    assert_problem(gateway.put(f"/cart/{user}/items/@updated_at", json={"quantity": 2}, headers=bearer(user)), 404)
    assert redis_client.hexists(cart_key(shop_settings, user), "@updated_at")


def test_clearing_the_cart(gateway, user):
    add(gateway, user, new_product(gateway)["sku"])

    response = gateway.delete(f"/cart/{user}", headers=bearer(user))

    assert response.status_code == 204 and response.content == b""
    assert gateway.get(f"/cart/{user}", headers=bearer(user)).json()["items"] == []
    assert gateway.delete(f"/cart/{user}", headers=bearer(user)).status_code == 204  # a repeat: the same answer


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
    assert_problem(gateway.get(f"/cart/{user}", headers=bearer("someone-else")), 404)
    assert_problem(add(gateway, user, mug["sku"], headers=bearer("someone-else")), 404)
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
        response, seconds = answer_and_seconds(lambda: httpx.get(f"{cart.url}/cart/{user}", headers=bearer(user),
                                                                 timeout=5))

    assert_problem(response, 503)
    assert response.headers["retry-after"] and seconds < 2


def test_cart_ttl_seconds_sets_how_long_a_cart_lives_without_a_write(gateway, shop, shop_settings, redis_client,
                                                                      user):
    mug = new_product(gateway)["sku"]
    with function_alone("cart-add-item", {**shop.settings, "CART_TTL_SECONDS": "3600"}) as adder:
        added = httpx.post(f"{adder.url}/cart/{user}/items", json={"product_sku": mug, "quantity": 1},
                           headers=bearer(user), timeout=10)

    assert added.status_code == 200, added.text
    assert 3600 - 60 < redis_client.ttl(cart_key(shop_settings, user)) <= 3600


def test_a_redis_address_where_something_else_answers_is_503_not_a_500(shop, shop_settings, user):
    elsewhere = shop.url.replace("http://", "redis://") + "/0"  # the gateway: HTTP, not Redis
    with function_alone("cart-get-cart", {**shop_settings, "REDIS_URL": elsewhere}) as cart:
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


def lines_of(cart: dict) -> dict[str, int]:
    return {line["product_sku"]: line["quantity"] for line in cart["items"]}


def test_unpriced_read_answers_the_stored_lines(gateway, user):
    mug = new_product(gateway)
    add(gateway, user, mug["sku"], 2)

    response = gateway.get(f"/cart/{user}", params={"priced": "false"}, headers=bearer(user))

    assert response.status_code == 200, response.text
    cart = response.json()
    assert cart["priced"] is False and cart["total_price"] is None and cart["total_items"] == 2
    assert cart["items"] == [{"product_sku": mug["sku"], "quantity": 2, "name": None, "price_per_item": None,
                              "item_total_price": None, "currency": None, "available": None}]
    assert cart["updated_at"]
    assert gateway.get(f"/cart/{user}", headers=bearer(user)).json()["priced"] is True  # the default stays priced
    assert gateway.get(f"/cart/{user}", params={"priced": "false"}, headers=ADMIN).status_code == 200
    assert_problem(gateway.get(f"/cart/{user}", params={"priced": "false"}, headers=bearer("someone-else")), 404)


@pytest.mark.parametrize("query", ["priced=maybe", "priced=false&priced=true", "colour=red", "priced=false&x=1"])
def test_invalid_and_unknown_cart_query_parameters_are_rejected(gateway, user, query):
    body = assert_problem(gateway.get(f"/cart/{user}?{query}", headers=bearer(user)), 422)

    assert body["errors"][0]["field"].startswith("query.")


def lookups_served(metrics_port: int) -> int:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    return int(sum(float(count) for count in re.findall(
        r'^shop_http_requests_total\{function="catalog-lookup-products"[^}]*\} (\S+)$', text, re.MULTILINE)))


def test_unpriced_read_makes_no_catalog_call(gateway, shop_settings, user):
    mug = new_product(gateway)
    add(gateway, user, mug["sku"], 2)
    metrics_port = free_port()
    with function_alone("catalog-lookup-products", shop_settings, metrics_port) as catalog:
        assert httpx.get(f"{catalog.url}/internal/products/lookup", params={"skus": mug["sku"]},
                         headers=service_headers("catalog-lookup-products")).status_code == 200
        wait_for_port(metrics_port)
        with function_alone("cart-get-cart", {**shop_settings,
                                              url_variable("catalog-lookup-products"): catalog.url}) as reader:
            unpriced = httpx.get(f"{reader.url}/cart/{user}?priced=false", headers=bearer(user), timeout=5)
            after_unpriced = lookups_served(metrics_port)
            priced = httpx.get(f"{reader.url}/cart/{user}", headers=bearer(user), timeout=5)
            after_priced = lookups_served(metrics_port)

    assert unpriced.status_code == 200 and unpriced.json()["priced"] is False
    assert after_unpriced == 1  # only the warm-up lookup above
    assert priced.json()["priced"] is True and priced.json()["items"][0]["price_per_item"] == "12.50"
    assert after_priced == 2  # the same reader does ask the catalog when pricing


def test_unpriced_read_answers_while_the_catalog_is_down(gateway, shop, user):
    mug = new_product(gateway)
    add(gateway, user, mug["sku"], 3)
    no_catalog = {**shop.settings, url_variable("catalog-lookup-products"): f"http://127.0.0.1:{free_port()}"}
    with function_alone("cart-get-cart", no_catalog) as reader:
        unpriced = httpx.get(f"{reader.url}/cart/{user}?priced=false", headers=bearer(user), timeout=5)
        default = httpx.get(f"{reader.url}/cart/{user}", headers=bearer(user), timeout=5)

    assert unpriced.status_code == 200 and default.status_code == 200
    assert unpriced.json()["priced"] is False and default.json()["priced"] is False
    assert unpriced.json()["items"] == default.json()["items"]
    assert lines_of(unpriced.json()) == {mug["sku"]: 3}


def remove_ordered(shop, user, order_id, lines: dict[str, int], **options) -> httpx.Response:
    url = f"{shop.functions['cart-remove-ordered'].url}/internal/cart/{user}/orders/{order_id}"
    body = {"lines": [{"product_sku": sku, "quantity": quantity} for sku, quantity in lines.items()]}
    return httpx.post(url, json=body, timeout=10, headers=removing(), **options)


def removing() -> dict[str, str]:
    return service_headers("cart-remove-ordered")


def cart_with(gateway, user, quantities: list[int]) -> list[str]:
    """The user's cart filled with one new product per quantity; their SKUs in that order."""
    skus = [new_product(gateway)["sku"] for _ in quantities]
    for sku, quantity in zip(skus, quantities):
        assert add(gateway, user, sku, quantity).status_code == 200
    return skus


def test_an_order_removes_exactly_its_quantities_and_leaves_other_lines(gateway, shop, user):
    mug, pot, kettle = cart_with(gateway, user, [5, 2, 1])

    response = remove_ordered(shop, user, uuid.uuid4(), {mug: 3, pot: 2})

    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": user, "applied": True, "items": sorted(
        [{"product_sku": mug, "quantity": 2}, {"product_sku": kettle, "quantity": 1}], key=lambda l: l["product_sku"])}
    assert lines_of(gateway.get(f"/cart/{user}", headers=bearer(user)).json()) == {mug: 2, kettle: 1}


def test_the_same_order_id_again_changes_nothing(gateway, shop, user):
    mug, pot = cart_with(gateway, user, [4, 1])
    order_id = uuid.uuid4()
    assert remove_ordered(shop, user, order_id, {mug: 1}).json()["applied"] is True
    add(gateway, user, mug, 2)  # the shopper adds more after ordering

    again = remove_ordered(shop, user, order_id, {mug: 1})
    other_spelling = remove_ordered(shop, user, str(order_id).upper(), {mug: 1})

    assert again.status_code == 200 and again.json()["applied"] is False
    assert other_spelling.json()["applied"] is False
    assert lines_of(again.json()) == {mug: 5, pot: 1}
    assert lines_of(gateway.get(f"/cart/{user}", headers=bearer(user)).json()) == {mug: 5, pot: 1}


def test_two_orders_each_remove_their_quantities(gateway, shop, user):
    (mug,) = cart_with(gateway, user, [5])

    first = remove_ordered(shop, user, uuid.uuid4(), {mug: 2})
    second = remove_ordered(shop, user, uuid.uuid4(), {mug: 2})

    assert first.json()["applied"] is True and second.json()["applied"] is True
    assert lines_of(second.json()) == {mug: 1}


def test_lines_reaching_zero_or_gone_meanwhile_are_not_brought_back(gateway, shop, shop_settings, redis_client,
                                                                   user):
    mug, pot, kettle = cart_with(gateway, user, [1, 2, 3])
    gateway.delete(f"/cart/{user}/items/{pot}", headers=bearer(user))  # removed by the shopper before the order ends

    partly = remove_ordered(shop, user, uuid.uuid4(), {mug: 1, pot: 2, kettle: 1})
    emptied = remove_ordered(shop, user, uuid.uuid4(), {kettle: 5})

    assert lines_of(partly.json()) == {kettle: 2}
    assert emptied.json() == {"user_id": user, "items": [], "applied": True}
    assert not redis_client.exists(cart_key(shop_settings, user))
    assert redis_client.zscore(active_index(shop_settings, user), user) is None


def test_removal_refreshes_the_cart_and_marks_the_order_for_the_cart_ttl(gateway, shop, shop_settings, redis_client,
                                                                        user):
    mug, pot = cart_with(gateway, user, [3, 1])
    key = cart_key(shop_settings, user)
    redis_client.expire(key, 100)
    stamp_before = redis_client.hget(key, "@updated_at")
    order_id = uuid.uuid4()
    time.sleep(0.01)

    remove_ordered(shop, user, order_id, {mug: 1})

    week = 7 * 24 * 3600
    assert week - 60 < redis_client.ttl(key) <= week
    assert int(redis_client.hget(key, "@updated_at")) > int(stamp_before)
    marker = f"{shop_settings['REDIS_KEY_PREFIX']}cart-order:{{{user}}}:{order_id}"
    assert week - 60 < redis_client.ttl(marker) <= week
    assert redis_client.zscore(active_index(shop_settings, user), user) is not None


def test_concurrent_removals_for_one_order_apply_once(gateway, shop, user):
    mug, pot = cart_with(gateway, user, [10, 2])
    order_id = uuid.uuid4()
    url = f"{shop.functions['cart-remove-ordered'].url}/internal/cart/{user}/orders/{order_id}"

    async def remove_twenty_times():
        async with httpx.AsyncClient(timeout=10, headers=removing()) as client:
            return await asyncio.gather(*(client.post(url, json={"lines": [
                {"product_sku": mug, "quantity": 3}, {"product_sku": pot, "quantity": 1}]}) for _ in range(20)))

    responses = asyncio.run(remove_twenty_times())

    assert [r.status_code for r in responses] == [200] * 20
    assert sorted(r.json()["applied"] for r in responses) == [False] * 19 + [True]
    assert all(lines_of(r.json()) == {mug: 7, pot: 1} for r in responses)
    assert lines_of(gateway.get(f"/cart/{user}", headers=bearer(user)).json()) == {mug: 7, pot: 1}


@pytest.mark.parametrize("body", [
    {}, {"lines": []}, {"lines": [{"product_sku": "X", "quantity": 0}]},
    {"lines": [{"product_sku": "X", "quantity": 1001}]}, {"lines": [{"product_sku": "X", "quantity": "2"}]},
    {"lines": [{"product_sku": "X", "quantity": 1.5}]}, {"lines": [{"product_sku": "bad sku", "quantity": 1}]},
    {"lines": [{"product_sku": "X", "quantity": 1}, {"product_sku": "X", "quantity": 2}]},
    {"lines": [{"product_sku": "X", "quantity": 1, "price": "1.00"}]},
    {"lines": [{"product_sku": "X", "quantity": 1}], "clear": True},
    {"lines": [{"product_sku": f"X{i}", "quantity": 1} for i in range(101)]}, [],
])
def test_invalid_removal_bodies_are_rejected_and_change_nothing(gateway, shop, user, body):
    (mug,) = cart_with(gateway, user, [2])
    url = f"{shop.functions['cart-remove-ordered'].url}/internal/cart/{user}/orders/{uuid.uuid4()}"

    assert_problem(httpx.post(url, json=body, timeout=10, headers=removing()), 422)
    assert lines_of(gateway.get(f"/cart/{user}", headers=bearer(user)).json()) == {mug: 2}


def test_bad_ids_and_malformed_requests_to_the_removal_are_problems(shop, user):
    base = shop.functions["cart-remove-ordered"].url
    order_id = uuid.uuid4()
    body = {"lines": [{"product_sku": "X", "quantity": 1}]}

    assert_problem(httpx.post(f"{base}/internal/cart/{user}/orders/not-a-uuid", json=body, headers=removing()), 404)
    assert_problem(httpx.post(f"{base}/internal/cart/%20bad%20id/orders/{order_id}", json=body, headers=removing()),
                   422)
    assert_problem(httpx.post(f"{base}/internal/cart/{user}/orders/{order_id}", content=b'{"lines":',
                              headers={"Content-Type": "application/json", **removing()}), 400)
    assert_problem(httpx.post(f"{base}/internal/cart/{user}/orders/{order_id}", content=b"lines",
                              headers={"Content-Type": "text/plain", **removing()}), 415)
    assert_problem(httpx.get(f"{base}/internal/cart/{user}/orders/{order_id}", headers=removing()), 405)


def test_the_removal_is_not_served_by_the_public_gateway(gateway, user):
    response = gateway.post(f"/internal/cart/{user}/orders/{uuid.uuid4()}",
                            json={"lines": [{"product_sku": "X", "quantity": 1}]}, headers=bearer(user))

    assert response.status_code == 404


def test_removal_with_redis_down_answers_503_quickly(shop_settings, user):
    no_redis = {**shop_settings, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with function_alone("cart-remove-ordered", no_redis) as remover:
        response, elapsed = answer_and_seconds(lambda: httpx.post(
            f"{remover.url}/internal/cart/{user}/orders/{uuid.uuid4()}",
            json={"lines": [{"product_sku": "X", "quantity": 1}]}, timeout=5, headers=removing()))

    assert_problem(response, 503)
    assert response.headers["Retry-After"]
    assert elapsed < 2


@pytest.mark.parametrize("step", ["cart.after-index", "cart.after-write"])
def test_an_instance_killed_around_a_cart_write_never_leaves_the_cart_out_of_the_active_index(
        gateway, shop, shop_settings, redis_client, user, step):
    mug = new_product(gateway)["sku"]
    index = active_index(shop_settings, user)
    with function_alone("cart-add-item", {**shop.settings, "SHOP_TEST_FAULTS": f"{step}=crash"}) as dying:
        with pytest.raises(httpx.TransportError):  # SIGKILLed at the step (shared/faults.py)
            httpx.post(f"{dying.url}/cart/{user}/items", json={"product_sku": mug, "quantity": 1},
                       headers=bearer(user), timeout=10)

    assert redis_client.zscore(index, user) is not None  # the entry came first: at worst an extra one
    assert redis_client.exists(cart_key(shop_settings, user)) == (step == "cart.after-write")
    assert add(gateway, user, mug).status_code == 200  # the shopper tries again
    assert redis_client.zscore(index, user) is not None
    assert lines_of(gateway.get(f"/cart/{user}", headers=bearer(user)).json()) == {
        mug: 2 if step == "cart.after-write" else 1}


def keyed(user, key: str) -> dict[str, str]:
    return {**bearer(user), "Idempotency-Key": key}


def test_a_keyed_add_is_applied_once_however_often_it_is_sent(gateway, user):
    mug, lamp = new_product(gateway)["sku"], new_product(gateway)["sku"]
    assert add(gateway, user, lamp, 1).status_code == 200

    first = add(gateway, user, mug, 2, headers=keyed(user, "add-mug-1"))
    again = add(gateway, user, mug, 2, headers=keyed(user, "add-mug-1"))
    other_key = add(gateway, user, mug, 2, headers=keyed(user, "add-mug-2"))

    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert lines_of(again.json()) == {mug: 2, lamp: 1} and again.json()["total_price"] == "37.50"  # priced as ever
    assert lines_of(other_key.json()) == {mug: 4, lamp: 1}


def test_an_idempotency_key_names_one_add_of_one_cart(gateway, user):
    mug, lamp = new_product(gateway)["sku"], new_product(gateway)["sku"]
    assert add(gateway, user, mug, 1, headers=keyed(user, "k-1")).status_code == 200
    someone_else = unique("shopper")

    reused = [add(gateway, user, mug, 3, headers=keyed(user, "k-1")),  # another quantity
              add(gateway, user, lamp, 1, headers=keyed(user, "k-1"))]  # another product
    theirs = add(gateway, someone_else, mug, 1, headers=keyed(someone_else, "k-1"))  # another user's key

    for response in reused:
        assert assert_problem(response, 422)["errors"][0]["type"] == "idempotency_key_reused"
    assert theirs.status_code == 200 and "idempotent-replayed" not in theirs.headers
    assert lines_of(gateway.get(f"/cart/{user}", headers=bearer(user)).json()) == {mug: 1}


@pytest.mark.parametrize("key", ["", "x" * 65, "tab\there", "ünïcode".encode()], ids=["empty", "long", "tab", "utf8"])
def test_a_malformed_idempotency_key_is_bad_request_and_adds_nothing(gateway, user, key):
    mug = new_product(gateway)["sku"]

    response = gateway.post(f"/cart/{user}/items", json={"product_sku": mug, "quantity": 1},
                            headers={**bearer(user), "Idempotency-Key": key})

    assert assert_problem(response, 400)["errors"][0]["field"] == "header.Idempotency-Key"
    assert lines_of(gateway.get(f"/cart/{user}", headers=bearer(user)).json()) == {}


def test_a_keyed_add_whose_instance_died_after_the_write_is_applied_once_on_retry(gateway, shop, user):
    mug = new_product(gateway)["sku"]
    with function_alone("cart-add-item", {**shop.settings, "SHOP_TEST_FAULTS": "cart.after-write=crash"}) as dying:
        with pytest.raises(httpx.TransportError):  # SIGKILLed once the add is written (shared/faults.py)
            httpx.post(f"{dying.url}/cart/{user}/items", json={"product_sku": mug, "quantity": 3},
                       headers=keyed(user, "retried"), timeout=10)

    retry = add(gateway, user, mug, 3, headers=keyed(user, "retried"))

    assert retry.status_code == 200 and retry.headers["idempotent-replayed"] == "true"
    assert lines_of(retry.json()) == {mug: 3}


def test_twenty_concurrent_sends_of_one_keyed_add_apply_it_once(gateway, shop, user):
    """The key's check and its marker are in the add's one script: no two requests can both pass the check."""
    mug = new_product(gateway)["sku"]

    async def send_twenty():
        async with httpx.AsyncClient(base_url=shop.url, timeout=10) as client:
            return await asyncio.gather(*(client.post(f"/cart/{user}/items", json={"product_sku": mug, "quantity": 3},
                                                      headers=keyed(user, "twenty")) for _ in range(20)))

    responses = asyncio.run(send_twenty())
    for _ in range(5):  # a 503 (a slow catalog on a busy machine) is sent again with its key, as a client would
        responses = [add(gateway, user, mug, 3, headers=keyed(user, "twenty")) if response.status_code == 503
                     else response for response in responses]

    assert [response.status_code for response in responses] == [200] * 20
    assert sum("idempotent-replayed" not in response.headers for response in responses) <= 1
    assert lines_of(gateway.get(f"/cart/{user}", headers=bearer(user)).json()) == {mug: 3}


def test_a_keyed_add_retried_after_the_cart_was_cleared_adds_nothing(gateway, user):
    mug = new_product(gateway)["sku"]
    assert add(gateway, user, mug, 2, headers=keyed(user, "before-clear")).status_code == 200
    assert gateway.delete(f"/cart/{user}", headers=bearer(user)).status_code == 204

    retry = add(gateway, user, mug, 2, headers=keyed(user, "before-clear"))

    assert retry.status_code == 200 and retry.headers["idempotent-replayed"] == "true"
    assert lines_of(retry.json()) == {}  # the cart as it is: applied once, then cleared


def test_a_keyed_add_retried_after_its_product_went_off_sale_is_answered_as_applied(gateway, user):
    mug = new_product(gateway)
    assert add(gateway, user, mug["sku"], 2, headers=keyed(user, "before-off-sale")).status_code == 200
    assert gateway.patch(f"/products/{mug['id']}", json={"is_active": False}, headers=ADMIN).status_code == 200

    retry = add(gateway, user, mug["sku"], 2, headers=keyed(user, "before-off-sale"))
    fresh = add(gateway, user, mug["sku"], 2, headers=keyed(user, "after-off-sale"))

    assert retry.status_code == 200 and retry.headers["idempotent-replayed"] == "true"
    assert lines_of(retry.json()) == {mug["sku"]: 2} and retry.json()["items"][0]["available"] is False
    assert assert_problem(fresh, 422)["errors"][0]["type"] == "product_inactive"


def test_the_key_of_an_applied_add_is_kept_for_the_cart_ttl(gateway, shop_settings, redis_client, user):
    mug = new_product(gateway)["sku"]
    assert add(gateway, user, mug, 1, headers=keyed(user, "lives")).status_code == 200

    marker = f"{shop_settings['REDIS_KEY_PREFIX']}cart-add-key:{{{user}}}:lives"
    assert redis_client.get(marker) == f"{mug} 1"
    with redis_client.pipeline(transaction=False) as pipeline:  # both read at one moment
        marker_ms, cart_ms = pipeline.pttl(marker).pttl(cart_key(shop_settings, user)).execute()
    assert abs(marker_ms - cart_ms) <= 1000


def test_an_instance_killed_after_clearing_a_cart_leaves_an_extra_index_entry_that_the_next_clear_drops(
        gateway, shop, shop_settings, redis_client, user):
    mug = new_product(gateway)["sku"]
    index = active_index(shop_settings, user)
    add(gateway, user, mug)
    with function_alone("cart-clear-cart", {**shop.settings, "SHOP_TEST_FAULTS": "cart.after-write=crash"}) as dying:
        with pytest.raises(httpx.TransportError):
            httpx.delete(f"{dying.url}/cart/{user}", headers=bearer(user), timeout=10)

    assert not redis_client.exists(cart_key(shop_settings, user))
    assert redis_client.zscore(index, user) is not None  # extra: counted until the TTL prunes it
    add(gateway, user, mug)
    assert gateway.delete(f"/cart/{user}", headers=bearer(user)).status_code == 204
    assert redis_client.zscore(index, user) is None


@pytest.mark.parametrize("another_add", [False, True])
def test_a_clear_racing_an_add_that_re_indexes_the_cart_leaves_the_added_cart_in_the_index(
        gateway, shop, shop_settings, redis_client, user, another_add):
    """The slow add has written the index entry and sleeps before its cart write; a clear lands meanwhile (after
    another add of the user indexed again and wrote its cart, when `another_add`)."""
    mug = new_product(gateway)["sku"]
    index = active_index(shop_settings, user)
    add(gateway, user, mug)
    first = redis_client.zscore(index, user)
    redis_client.delete(f"{shop_settings['REDIS_KEY_PREFIX']}cart-indexed:{{{user}}}")  # its refresh period is over
    with function_alone("cart-add-item", {**shop.settings, "SHOP_TEST_FAULTS": "cart.after-index=sleep:2"}) as slow, \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        adding = pool.submit(httpx.post, f"{slow.url}/cart/{user}/items", json={"product_sku": mug, "quantity": 1},
                             headers=bearer(user), timeout=10)
        deadline = time.monotonic() + 5
        while redis_client.zscore(index, user) == first and time.monotonic() < deadline:
            time.sleep(0.02)  # until the add has re-indexed the user and sleeps before writing the cart
        assert redis_client.zscore(index, user) > first
        if another_add:
            assert add(gateway, user, mug).status_code == 200
        assert gateway.delete(f"/cart/{user}", headers=bearer(user)).status_code == 204
        assert adding.result().status_code == 200

    assert lines_of(gateway.get(f"/cart/{user}", headers=bearer(user)).json()) == {mug: 1}
    assert set(redis_client.hkeys(cart_key(shop_settings, user))) == {mug, "@updated_at"}  # the format it had
    assert redis_client.zscore(index, user) is not None  # the add's entry stayed
