"""Product versions as ETags: every write of a product moves its ETag; GET revalidates with If-None-Match."""

from __future__ import annotations

import pytest
from bson import ObjectId
from pymongo import MongoClient

from tests.support import ADMIN, bearer, unique


def new_product(gateway, **overrides):
    body = {"sku": unique("ETAG"), "name": "Etag Lamp", "price": {"amount": "20.00", "currency": "EUR"},
            "brand": "Lumina", "stock_quantity": 5, **overrides}
    response = gateway.post("/products", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response


@pytest.fixture(scope="module")
def products(shop_settings):
    with MongoClient(shop_settings["MONGODB_URL"], tz_aware=True) as client:
        yield client[shop_settings["MONGODB_DATABASE"]]["products"]


def test_create_get_and_patch_answer_the_version_as_a_strong_etag(gateway):
    created = new_product(gateway)
    product_id = created.json()["id"]

    fetched = gateway.get(f"/products/{product_id}")
    patched = gateway.patch(f"/products/{product_id}", json={"name": "Renamed Lamp"}, headers=ADMIN)

    assert created.headers["etag"] == fetched.headers["etag"] == '"v1"'
    assert patched.status_code == 200 and patched.headers["etag"] == '"v2"'
    assert gateway.get(f"/products/{product_id}").headers["etag"] == '"v2"'
    assert "version" not in fetched.json() and "version" not in patched.json()


def test_get_with_the_current_etag_is_not_modified_without_a_body(gateway):
    product_id = new_product(gateway).json()["id"]

    response = gateway.get(f"/products/{product_id}", headers={"If-None-Match": '"v1"'})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == '"v1"'


@pytest.mark.parametrize("header", ['W/"v1"', '"v9", "v1"', "*"])
def test_if_none_match_compares_weakly_and_accepts_lists_and_any(gateway, header):
    product_id = new_product(gateway).json()["id"]

    assert gateway.get(f"/products/{product_id}", headers={"If-None-Match": header}).status_code == 304


@pytest.mark.parametrize("header", ['"v2"', '"v01"', "v1", '"1"', '"v1" junk', ""])
def test_if_none_match_naming_another_version_answers_the_product(gateway, header):
    product_id = new_product(gateway).json()["id"]

    response = gateway.get(f"/products/{product_id}", headers={"If-None-Match": header})

    assert response.status_code == 200 and response.json()["id"] == product_id
    assert response.headers["etag"] == '"v1"'


def test_a_write_makes_the_old_etag_stale_for_revalidation(gateway):
    product_id = new_product(gateway).json()["id"]
    gateway.patch(f"/products/{product_id}", json={"stock_adjustment": 1}, headers=ADMIN)

    response = gateway.get(f"/products/{product_id}", headers={"If-None-Match": '"v1"'})

    assert response.status_code == 200 and response.json()["stock_quantity"] == 6
    assert response.headers["etag"] == '"v2"'


def test_an_inactive_product_is_still_404_for_customers_whatever_they_send(gateway):
    product_id = new_product(gateway, is_active=False).json()["id"]

    response = gateway.get(f"/products/{product_id}", headers={**bearer("alice"), "If-None-Match": "*"})

    assert response.status_code == 404


def test_a_product_written_before_versions_is_version_zero(gateway, products):
    product_id = new_product(gateway).json()["id"]
    products.update_one({"_id": ObjectId(product_id)}, {"$unset": {"version": ""}})

    fetched = gateway.get(f"/products/{product_id}")
    patched = gateway.patch(f"/products/{product_id}", json={"stock_quantity": 9},
                            headers={**ADMIN, "If-Match": '"v0"'})

    assert fetched.headers["etag"] == '"v0"'
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == '"v1"' and patched.json()["stock_quantity"] == 9


def test_reservation_holds_are_neither_shown_nor_touched_by_an_update(gateway, products):
    product_id = new_product(gateway).json()["id"]
    products.update_one({"_id": ObjectId(product_id)}, {"$set": {"holds": ["order-1"],
                                                                 "hold_tokens": {"order-1": "a-token"}}})

    patched = gateway.patch(f"/products/{product_id}", json={"name": "Held Lamp", "stock_adjustment": 2},
                            headers=ADMIN)
    read, listed = gateway.get(f"/products/{product_id}").json(), gateway.get("/products?limit=100").json()["items"]

    assert patched.status_code == 200, patched.text
    shown = [patched.json(), read, *(item for item in listed if item["id"] == product_id)]
    assert len(shown) == 3 and not any({"holds", "hold_tokens"} & item.keys() for item in shown)
    stored = products.find_one({"_id": ObjectId(product_id)})
    assert stored["holds"] == ["order-1"] and stored["hold_tokens"] == {"order-1": "a-token"}
