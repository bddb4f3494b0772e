"""Listing pages (offset and keyset) and the bounds on search, against the real MongoDB-protocol server."""

from __future__ import annotations

import asyncio
import base64
import json
from decimal import Decimal

import httpx
import pytest
from pymongo import MongoClient

from functions.catalog import store
from functions.catalog.models import SEARCH_CANDIDATES, ProductCreate, ProductQuery
from tests.support import ADMIN, assert_problem, function_alone, on_own_mongo, unique

SORT_KEYS = {
    "price": lambda item: (Decimal(item["price"]["amount"]), item["id"]),
    "-price": lambda item: (-Decimal(item["price"]["amount"]), _reversed(item["id"])),
    "name": lambda item: (item["name"], item["id"]),
    "-created_at": lambda item: (_reversed(item["created_at"]), _reversed(item["id"])),
}


def _reversed(text: str) -> tuple[int, ...]:
    return tuple(-ord(character) for character in text)


@pytest.fixture(scope="module")
def crowded_category(gateway):
    """17 products in a category of their own, with repeated prices and names (ties the order must break),
    created fast enough that some share their created_at millisecond."""
    category = unique("paged")
    for number in range(17):
        response = gateway.post("/products", headers=ADMIN, json={
            "sku": unique("PAGE"), "name": f"Item {number % 5}", "brand": "Pager", "categories": [category],
            "price": {"amount": f"{10 + number % 4}.00", "currency": "EUR"}, "stock_quantity": 1})
        assert response.status_code == 201, response.text
    return category


def walk(gateway, params: dict) -> list[dict]:
    pages, after = [], None
    while True:
        response = gateway.get("/products", params={**params, **({"after": after} if after else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        after = page["next"]
        if after is None:
            return [item for page in pages for item in page["items"]]
        assert len(pages) < 50


@pytest.mark.parametrize("sort", list(SORT_KEYS))
def test_keyset_pages_cover_every_product_once_in_order(gateway, crowded_category, sort):
    params = {"category": crowded_category, "sort": sort, "limit": 4}

    items = walk(gateway, params)

    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == 17
    assert items == sorted(items, key=SORT_KEYS[sort])
    whole = gateway.get("/products", params={**params, "limit": 100}).json()
    assert [item["id"] for item in whole["items"]] == ids and whole["next"] is None


@pytest.mark.parametrize("sort", list(SORT_KEYS))
def test_offset_pages_agree_with_keyset_pages(gateway, crowded_category, sort):
    params = {"category": crowded_category, "sort": sort, "limit": 5}

    by_offset = [item["id"] for offset in range(0, 17, 5)
                 for item in gateway.get("/products", params={**params, "offset": offset}).json()["items"]]

    assert by_offset == [item["id"] for item in walk(gateway, params)]


def test_every_page_counts_the_whole_selection(gateway, crowded_category):
    page = gateway.get("/products", params={"category": crowded_category, "limit": 4}).json()

    assert (page["total"], page["total_exact"], len(page["items"])) == (17, True, 4)
    assert page["next"]


def test_a_product_added_while_paging_is_neither_repeated_nor_skipped_over(gateway):
    category = unique("moving")
    made = [gateway.post("/products", headers=ADMIN, json={
        "sku": unique("MOVE"), "name": f"Moving {number}", "brand": "Pager", "categories": [category],
        "price": {"amount": "5.00", "currency": "EUR"}}).json()["id"] for number in range(6)]
    first = gateway.get("/products", params={"category": category, "sort": "-created_at", "limit": 3}).json()

    gateway.post("/products", headers=ADMIN, json={"sku": unique("MOVE"), "name": "Newest", "brand": "Pager",
                                                   "categories": [category], "price": {"amount": "5.00", "currency": "EUR"}})
    second = gateway.get("/products", params={"category": category, "sort": "-created_at", "limit": 3,
                                              "after": first["next"]}).json()

    assert [item["id"] for item in first["items"] + second["items"]] == made[::-1]


def crafted(sort: str, value: object) -> str:
    """A cursor as ours are made (cursor.encode), holding a value our store never held."""
    raw = json.dumps([sort, value, "0" * 24]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("params, field", [
    ({"after": "not-a-cursor"}, "query"),
    ({"after": "WyJwcmljZSIsIjEwIiwieCJd"}, "query"),  # ["price","10","x"]: not an id
    ({"offset": "4", "after": "x"}, "query"),
    ({"sort": "price", "after": crafted("price", "1E+9999")}, "query"),  # Decimal128 overflows
    ({"sort": "price", "after": crafted("price", "1.0000000000000000000000000000000001")}, "query"),  # inexact
    ({"sort": "price", "after": crafted("price", "-1")}, "query"),
    ({"sort": "price", "after": crafted("price", 10)}, "query"),
    ({"sort": "-created_at", "after": crafted("-created_at", "0001-01-01T00:00:00+00:01")}, "query"),  # < year 1
    ({"sort": "-created_at", "after": crafted("-created_at", "2026-01-01T00:00:00")}, "query"),  # no zone
    ({"after": base64.urlsafe_b64encode(b"[" * 3000).decode()}, "query"),  # nested past the recursion limit
])
def test_a_cursor_not_made_by_us_or_beside_an_offset_is_refused(gateway, params, field):
    body = assert_problem(gateway.get("/products", params=params), 422)

    assert body["errors"][0]["field"].startswith(field)


def test_a_cursor_continues_only_the_sort_it_was_made_for(gateway, crowded_category):
    cursor = gateway.get("/products", params={"category": crowded_category, "sort": "price", "limit": 2}).json()["next"]

    body = assert_problem(gateway.get("/products", params={"category": crowded_category, "sort": "name",
                                                           "after": cursor}), 422)

    assert "sort=price" in body["errors"][0]["message"]


def test_search_needs_two_characters(gateway):
    body = assert_problem(gateway.get("/search", params={"q": " a "}), 422)

    assert body["errors"][0]["field"] == "query.q"
    assert "at least 2 characters" in body["errors"][0]["message"]


def test_search_pages_only_through_the_ranked_candidates(gateway):
    body = assert_problem(gateway.get("/search", params={"q": "lamp", "offset": str(SEARCH_CANDIDATES)}), 422)

    assert body["errors"][0]["field"] == "query.offset"


def test_a_broad_search_ranks_a_bounded_set_and_says_its_total_is_not_exact(shop_settings, in_process_store):
    database = unique("broad").replace("-", "_")  # its own: a thousand more products would slow every search
    in_process_store(MONGODB_DATABASE=database)
    asyncio.run(store.insert_many([
        ProductCreate(sku=unique("BROAD"), name=f"Broad {number}", brand="Wide", stock_quantity=1,
                      price={"amount": "1.00", "currency": "EUR"}) for number in range(SEARCH_CANDIDATES + 5)]))
    try:
        with function_alone("catalog-search-products", {**shop_settings, "MONGODB_DATABASE": database}) as search:
            page = httpx.get(f"{search.url}/search", params={"q": "broad", "limit": 3}, timeout=30).json()
    finally:
        with MongoClient(shop_settings["MONGODB_URL"]) as client:
            client.drop_database(database)

    assert (page["total"], page["total_exact"], len(page["items"])) == (SEARCH_CANDIDATES, False, 3)


def test_a_search_past_its_server_side_time_limit_is_503(shop_settings):
    with on_own_mongo("catalog-search-products", shop_settings) as (client, search):
        # The server fails the next operation that carries a time limit (maxTimeMS), as a slow one would.
        client.admin.command("configureFailPoint", "maxTimeAlwaysTimeOut", mode={"times": 1})
        timed_out = httpx.get(f"{search.url}/search", params={"q": "lamp"}, timeout=10)
        afterwards = httpx.get(f"{search.url}/search", params={"q": "lamp"}, timeout=10)

    body = assert_problem(timed_out, 503)
    assert body["type"].endswith("/search-timeout") and "limit" in body["detail"]
    assert timed_out.headers["retry-after"]
    assert afterwards.status_code == 200


def test_listing_counts_stop_at_their_cap(gateway, crowded_category, in_process_store, monkeypatch):
    in_process_store()
    monkeypatch.setattr(store, "MAX_COUNTED", 10)  # as a catalog past the real cap (10,000) would be

    page = asyncio.run(store.find(ProductQuery(category=crowded_category, limit=2), include_inactive=False))

    assert (page.total, page.total_exact, len(page.items)) == (10, False, 2)


@pytest.mark.parametrize("path, params", [("/products", {"sort": "name"}), ("/search", {"q": "item"})])
def test_a_page_revalidates_to_304_until_a_product_on_it_changes(gateway, crowded_category, path, params):
    params = {**params, **({"category": crowded_category} if path == "/products" else {}), "limit": 100}
    page = gateway.get(path, params=params)
    etag = page.headers["etag"]

    unchanged = gateway.get(path, params=params, headers={"If-None-Match": etag})
    first = next(item for item in page.json()["items"] if item["categories"] == [crowded_category])
    gateway.patch(f"/products/{first['id']}", json={"stock_adjustment": 1}, headers=ADMIN)
    changed = gateway.get(path, params=params, headers={"If-None-Match": etag})

    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert page.headers["vary"] == "Authorization"
    assert gateway.get(path, params=params, headers=ADMIN).headers["cache-control"] == "private, no-cache"
