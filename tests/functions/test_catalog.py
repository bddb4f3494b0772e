"""The catalog functions through the local gateway, against the real MongoDB-protocol server."""

from __future__ import annotations

import os
import signal
import time
import uuid

import httpx
import pytest

from local.processes import free_port
from tests.support import ADMIN, TOKEN_KEY_ID, answer_and_seconds, assert_problem, bearer, function_alone, service_headers, token, unique


def product_body(**overrides) -> dict:
    body = {
        "sku": unique("SKU"),
        "name": "Trail Runner 2",
        "description_short": "Light trail shoe",
        "description_long": "A light and grippy trail running shoe.",
        "price": {"amount": "89.90", "currency": "EUR"},
        "categories": ["shoes"],
        "brand": "Velocity",
        "stock_quantity": 5,
        "images": ["https://img.example.com/a.jpg"],
        "attributes": [{"key": "color", "value": "red"}],
        "is_active": True,
        "tags": ["running"],
    }
    body.update(overrides)
    return body


def create(gateway, **overrides) -> dict:
    response = gateway.post("/products", json=product_body(**overrides), headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def fixture_catalog(gateway):
    """Five products in a category of their own, so filters and sorts can be checked exactly."""
    category = unique("cat")
    specs = [
        ("Alpha Lamp", "Lumina", "30.00", 3, ["light"], True),
        ("Bravo Lamp", "Lumina", "10.00", 0, ["light", "sale"], True),
        ("Charlie Chair", "Casa", "120.00", 7, ["seat"], True),
        ("Delta Desk", "Casa", "250.50", 1, ["desk", "sale"], True),
        ("Echo Hidden", "Casa", "5.00", 9, ["seat"], False),
    ]
    made = []
    for name, brand, amount, stock, tags, active in specs:
        made.append(create(gateway, name=name, brand=brand, price={"amount": amount, "currency": "EUR"},
                           stock_quantity=stock, tags=tags, is_active=active, categories=[category]))
        time.sleep(0.002)  # distinct created_at for the -created_at sort
    return category, made


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


def test_create_then_get_product_round_trips_every_field(gateway):
    created = create(gateway, categories=["Shoes", "outdoor"], tags=["Trail"])

    fetched = gateway.get(f"/products/{created['id']}")

    assert fetched.status_code == 200
    body = fetched.json()
    assert body == created
    assert body["price"] == {"amount": "89.90", "currency": "EUR"}
    assert body["categories"] == ["shoes", "outdoor"] and body["tags"] == ["trail"]
    assert body["created_at"] and body["updated_at"]
    assert "_id" not in body and "brand_key" not in body


def test_create_answers_location_and_request_id(gateway):
    response = gateway.post("/products", json=product_body(), headers={**ADMIN, "X-Request-Id": "trace-123"})

    assert response.status_code == 201
    assert response.headers["location"] == f"/products/{response.json()['id']}"
    assert response.headers["x-request-id"] == "trace-123"


def test_duplicate_sku_is_conflict(gateway):
    body = product_body()
    existing = gateway.post("/products", json=body, headers=ADMIN)  # first sent, or: its 201 was lost
    assert existing.status_code == 201

    refused = gateway.post("/products", json=body, headers=ADMIN)

    assert assert_problem(refused, 409)["product_id"] == existing.json()["id"]  # the retry finds what it made
    assert refused.headers["location"] == f"/products/{existing.json()['id']}"


@pytest.mark.parametrize("product_id", ["0" * 24, "not-an-id", "6b06ddb9cbbc3f9528e12e7", "zz" * 12])
def test_unknown_or_malformed_id_is_not_found(gateway, product_id):
    assert_problem(gateway.get(f"/products/{product_id}"), 404)


@pytest.mark.parametrize("change, field", [
    ({"price": {"amount": "0", "currency": "EUR"}}, "body.price.amount"),
    ({"price": {"amount": "-3", "currency": "EUR"}}, "body.price.amount"),
    ({"price": {"amount": "1.999", "currency": "EUR"}}, "body.price.amount"),
    ({"price": {"amount": "10", "currency": "EURO"}}, "body.price.currency"),
    ({"price": {"amount": "10", "currency": "XYZ"}}, "body.price.currency"),
    ({"stock_quantity": -1}, "body.stock_quantity"),
    ({"stock_quantity": "5"}, "body.stock_quantity"),
    ({"stock_quantity": 1.5}, "body.stock_quantity"),
    ({"name": ""}, "body.name"),
    ({"name": "x" * 201}, "body.name"),
    ({"sku": "bad sku!"}, "body.sku"),
    ({"images": ["not a url"]}, "body.images.0"),
    ({"is_active": "yes"}, "body.is_active"),
    ({"attributes": [{"key": "", "value": "v"}]}, "body.attributes.0.key"),
    ({"surprise": 1}, "body.surprise"),
])
def test_invalid_product_is_rejected_with_field_errors(gateway, change, field):
    body = assert_problem(gateway.post("/products", json=product_body(**change), headers=ADMIN), 422)

    assert field in [error["field"] for error in body["errors"]]


def test_missing_required_fields_are_listed(gateway):
    body = assert_problem(gateway.post("/products", json={"sku": unique("S")}, headers=ADMIN), 422)

    assert {"body.name", "body.price", "body.brand"} <= {error["field"] for error in body["errors"]}


@pytest.mark.parametrize("content, content_type, status", [
    (b"{not json", "application/json", 400),
    (b"", "application/json", 400),
    (b"[1, 2]", "application/json", 422),
    (b"\xff\xfe", "application/json", 400),
    (b"sku=a", "application/x-www-form-urlencoded", 415),
])
def test_malformed_bodies_are_client_errors(gateway, content, content_type, status):
    response = gateway.post("/products", content=content, headers={**ADMIN, "Content-Type": content_type})

    assert_problem(response, status)


def test_oversized_body_is_refused(gateway):
    body = product_body(description_long="x" * (70 * 1024))

    assert_problem(gateway.post("/products", json=body, headers=ADMIN), 413)


def test_writes_need_an_admin_token(gateway):
    assert_problem(gateway.post("/products", json=product_body()), 401)
    assert_problem(gateway.post("/products", json=product_body(), headers=bearer("alice")), 403)
    assert_problem(gateway.patch(f"/products/{'0' * 24}", json={"name": "x"}, headers=bearer("alice")), 403)


@pytest.mark.parametrize("header", [
    "Bearer not-a-jwt",
    "Basic YWxpY2U6c2VjcmV0",
    "Bearer " + token("ops", "admin", ttl_seconds=-10),
])
def test_bad_or_expired_tokens_are_unauthorized(gateway, header):
    response = gateway.post("/products", json=product_body(), headers={"Authorization": header})

    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert body["detail"]


def test_token_signed_with_another_secret_is_unauthorized(gateway):
    from local.token import hs256_settings, issue_token

    forged = issue_token("ops", "admin", settings=hs256_settings({TOKEN_KEY_ID: "another-secret-long-enough-for-hs256"}))

    assert_problem(gateway.post("/products", json=product_body(), headers={"Authorization": f"Bearer {forged}"}), 401)


def test_patch_changes_only_the_fields_sent(gateway):
    created = create(gateway)
    current = gateway.get(f"/products/{created['id']}").headers["etag"]

    response = gateway.patch(f"/products/{created['id']}", json={"price": {"amount": "79.00", "currency": "EUR"},
                                                                 "stock_quantity": 0},
                             headers={**ADMIN, "If-Match": current})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["price"]["amount"] == "79.00" and body["stock_quantity"] == 0
    assert body["name"] == created["name"] and body["tags"] == created["tags"]
    assert body["updated_at"] > created["updated_at"]


@pytest.mark.parametrize("change", [{}, {"name": None}, {"sku": "NEW"}, {"stock_quantity": -5},
                                    {"price": {"amount": "1"}}, {"stock_adjustment": 0},
                                    {"stock_adjustment": 1_000_001}, {"stock_adjustment": "3"},
                                    {"stock_adjustment": None}, {"stock_quantity": 4, "stock_adjustment": 1},
                                    {"version": 9}, {"holds": []}])
def test_patch_validates_like_create(gateway, change):
    created = create(gateway)

    assert_problem(gateway.patch(f"/products/{created['id']}", json=change, headers=ADMIN), 422)


def test_patch_unknown_product_is_not_found(gateway):
    assert_problem(gateway.patch(f"/products/{'a' * 24}", json={"name": "x"}, headers=ADMIN), 404)


def test_inactive_products_are_hidden_from_everyone_but_admins(gateway):
    hidden = create(gateway, is_active=False)

    assert_problem(gateway.get(f"/products/{hidden['id']}"), 404)
    assert_problem(gateway.get(f"/products/{hidden['id']}", headers=bearer("alice")), 404)
    assert gateway.get(f"/products/{hidden['id']}", headers=ADMIN).status_code == 200


def test_list_filters_by_category_and_hides_inactive(gateway, fixture_catalog):
    category, _ = fixture_catalog

    response = gateway.get("/products", params={"category": category, "sort": "name"})

    assert names(response) == ["Alpha Lamp", "Bravo Lamp", "Charlie Chair", "Delta Desk"]
    assert response.json()["total"] == 4
    assert len(names(gateway.get("/products", params={"category": category}, headers=ADMIN))) == 5


@pytest.mark.parametrize("params, expected", [
    ({"brand": "lumina", "sort": "name"}, ["Alpha Lamp", "Bravo Lamp"]),
    ({"tag": "sale", "sort": "name"}, ["Bravo Lamp", "Delta Desk"]),
    ({"min_price": "30", "max_price": "120", "sort": "price"}, ["Alpha Lamp", "Charlie Chair"]),
    ({"in_stock": "true", "sort": "name"}, ["Alpha Lamp", "Charlie Chair", "Delta Desk"]),
    ({"in_stock": "false"}, ["Bravo Lamp"]),
    ({"sort": "price"}, ["Bravo Lamp", "Alpha Lamp", "Charlie Chair", "Delta Desk"]),
    ({"sort": "-price"}, ["Delta Desk", "Charlie Chair", "Alpha Lamp", "Bravo Lamp"]),
    ({"sort": "-created_at"}, ["Delta Desk", "Charlie Chair", "Bravo Lamp", "Alpha Lamp"]),
])
def test_list_filters_and_sorts_exactly(gateway, fixture_catalog, params, expected):
    category, _ = fixture_catalog

    assert names(gateway.get("/products", params={"category": category, **params})) == expected


def test_list_pages_with_limit_and_offset(gateway, fixture_catalog):
    category, _ = fixture_catalog

    first = gateway.get("/products", params={"category": category, "sort": "name", "limit": 3}).json()
    second = gateway.get("/products", params={"category": category, "sort": "name", "limit": 3, "offset": 3}).json()

    assert [first["total"], first["limit"], first["offset"]] == [4, 3, 0]
    assert [item["name"] for item in first["items"] + second["items"]] == [
        "Alpha Lamp", "Bravo Lamp", "Charlie Chair", "Delta Desk"]
    assert second["offset"] == 3 and len(second["items"]) == 1


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"offset": "-1"}, {"sort": "colour"},
    {"min_price": "abc"}, {"min_price": "50", "max_price": "10"}, {"in_stock": "maybe"}, {"colour": "red"},
    {"limit": ["1", "2"]},
])
def test_bad_query_parameters_are_rejected(gateway, params):
    body = assert_problem(gateway.get("/products", params=params), 422)

    assert all(error["field"].startswith("query") for error in body["errors"])


def test_search_ranks_name_matches_above_description_matches(gateway):
    word = f"zq{uuid.uuid4().hex[:6]}"
    in_description = create(gateway, name="Plain Kettle", description_long=f"Works with {word} stoves")
    in_name = create(gateway, name=f"The {word.upper()} Kettle")
    in_tags = create(gateway, name="Another Kettle", tags=[word])

    response = gateway.get("/search", params={"q": word})

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [in_name["id"], in_tags["id"], in_description["id"]]
    assert response.json()["total"] == 3


def test_search_treats_input_literally(gateway):
    word = f"zq{uuid.uuid4().hex[:6]}"
    create(gateway, name=f"Kettle {word} (2 l)")

    assert gateway.get("/search", params={"q": ".*"}).json()["total"] == 0
    assert gateway.get("/search", params={"q": f"{word} (2"}).json()["total"] == 1
    assert gateway.get("/search", params={"q": "{\"$ne\": 1}"}).json()["total"] == 0


def test_search_hides_inactive_products_and_pages(gateway):
    word = f"zq{uuid.uuid4().hex[:6]}"
    for index in range(3):
        create(gateway, name=f"{word} mug {index}")
    create(gateway, name=f"{word} hidden mug", is_active=False)

    page = gateway.get("/search", params={"q": word, "limit": 2, "offset": 2}).json()

    assert page["total"] == 3 and len(page["items"]) == 1


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}, {"q": "x" * 101}, {"q": "a", "limit": "500"}])
def test_search_validates_its_query(gateway, params):
    assert_problem(gateway.get("/search", params=params), 422)


def test_unknown_paths_and_methods_are_problems(gateway):
    assert_problem(gateway.get("/nope"), 404)
    response = gateway.delete("/products")
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


def test_store_down_answers_503_fast(shop_settings):
    settings = {**shop_settings, "MONGODB_URL": f"mongodb://127.0.0.1:{free_port()}",  # nothing listens there
                "MONGODB_TIMEOUT_MS": "1500"}  # the default
    with function_alone("catalog-get-product", settings) as catalog:
        response, seconds = answer_and_seconds(lambda: httpx.get(f"{catalog.url}/products/{'a' * 24}", timeout=5))

    body = assert_problem(response, 503)
    assert "unavailable" in body["detail"]
    assert response.headers["retry-after"] and seconds < 2.5


def test_each_endpoint_is_its_own_process(shop):
    pids = {running.process.pid for running in shop.functions.values()}

    assert len(pids) == len(shop.functions)


def test_killing_one_function_leaves_the_others_serving(shop, gateway):
    killed = shop.functions["catalog-get-product"].process
    try:
        os.killpg(killed.pid, signal.SIGKILL)  # the whole function: framework master and its worker
        killed.wait()

        assert gateway.get("/products", params={"limit": 1}).status_code == 200
        assert gateway.get("/search", params={"q": "lamp"}).status_code == 200
        assert_problem(gateway.get(f"/products/{'a' * 24}"), 503)
    finally:
        shop.restart("catalog-get-product")
    assert_problem(gateway.get(f"/products/{'a' * 24}"), 404)


def test_metrics_are_served_on_their_own_port(shop, gateway):
    gateway.get("/products", params={"limit": 1})
    metrics_port = shop.function_ports["catalog-list-products"][1]

    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text

    assert 'shop_http_requests_total{function="catalog-list-products",method="GET",status="200"}' in text
    assert "shop_http_request_duration_seconds_bucket" in text
    assert "process_cpu_seconds_total" in text
    assert_problem(gateway.get("/metrics"), 404)


def lookup_url(shop) -> str:
    return shop.functions["catalog-lookup-products"].url + "/internal/products/lookup"


def test_batch_lookup_answers_known_skus_active_or_not(gateway, shop):
    active, inactive = create(gateway), create(gateway, is_active=False)

    response = httpx.get(lookup_url(shop), params={"skus": f"{active['sku']},{inactive['sku']},NOPE-1"},
                         headers=service_headers("catalog-lookup-products"))

    assert response.status_code == 200
    found = {item["sku"]: item for item in response.json()["items"]}
    assert found.keys() == {active["sku"], inactive["sku"]}
    assert found[inactive["sku"]]["is_active"] is False
    assert found[active["sku"]] == {"sku": active["sku"], "id": active["id"], "name": active["name"],
                                    "price": active["price"], "stock_quantity": 5, "is_active": True}


@pytest.mark.parametrize("params", [{}, {"skus": ""}, {"skus": "bad sku"}, {"skus": ",".join(f"S{i}" for i in range(101))}])
def test_batch_lookup_validates_its_skus(shop, params):
    assert_problem(httpx.get(lookup_url(shop), params=params, headers=service_headers("catalog-lookup-products")), 422)


def test_batch_lookup_is_not_on_the_public_gateway(gateway):
    assert_problem(gateway.get("/internal/products/lookup", params={"skus": "A"}), 404)
