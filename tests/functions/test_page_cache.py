"""The per-instance cache of listing and search answers (functions/catalog/product_cache.py): the same TTL and
staleness bound as a product's, pages of admins apart from customers', every page forgotten on a local write.

Like tests/functions/test_product_cache.py: the functions run alone with the cache on, reading the session's
store, while writes go through the gateway: another instance.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from pymongo import monitoring

from functions.catalog import store
from functions.catalog.models import ProductQuery, ProductUpdate
from tests.support import ADMIN, bearer, caching_fixture, unique

LONG_TTL, SHORT_TTL = 60, 1


def new_category(gateway, count: int = 3, **overrides) -> tuple[str, list[str]]:
    category = unique("cached")
    ids = []
    for number in range(count):
        response = gateway.post("/products", headers=ADMIN, json={
            "sku": unique("PAGED"), "name": f"Cached Jug {number}", "brand": "Pour", "categories": [category],
            "price": {"amount": "12.00", "currency": "EUR"}, "stock_quantity": 4, **overrides})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return category, ids


lists = caching_fixture("catalog-list-products", LONG_TTL)
briefly_lists = caching_fixture("catalog-list-products", SHORT_TTL)
searches = caching_fixture("catalog-search-products", LONG_TTL)


def test_a_second_listing_is_answered_from_memory_with_its_age(gateway, lists):
    category, _ = new_category(gateway)

    first = lists.get("/products", params={"category": category})
    second = lists.get("/products", params={"category": category})

    assert first.status_code == second.status_code == 200 and first.json()["total"] == 3
    assert "age" not in first.headers and int(second.headers["age"]) <= LONG_TTL
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    assert second.headers["cache-control"] == f"public, max-age={LONG_TTL}, stale-while-revalidate={LONG_TTL}"


def test_another_query_is_another_page(gateway, lists):
    category, _ = new_category(gateway)
    lists.get("/products", params={"category": category})

    other = lists.get("/products", params={"category": category, "limit": 2})

    assert "age" not in other.headers and len(other.json()["items"]) == 2


def test_a_write_elsewhere_is_not_seen_before_the_ttl_and_is_after_it(gateway, lists, briefly_lists):
    category, ids = new_category(gateway)
    lists.get("/products", params={"category": category})
    briefly_lists.get("/products", params={"category": category})

    gateway.patch(f"/products/{ids[0]}", json={"stock_adjustment": -1}, headers=ADMIN)
    within = lists.get("/products", params={"category": category}).json()
    time.sleep(SHORT_TTL)  # the staleness bound: after it, every listing shows the write
    after = briefly_lists.get("/products", params={"category": category}).json()

    assert {item["stock_quantity"] for item in within["items"]} == {4}
    assert sorted(item["stock_quantity"] for item in after["items"]) == [3, 4, 4]


def test_admins_pages_are_kept_apart_from_customers(gateway, lists):
    category, _ = new_category(gateway, count=2, is_active=False)

    as_admin = lists.get("/products", params={"category": category}, headers=ADMIN)
    anonymous = lists.get("/products", params={"category": category})
    customer = lists.get("/products", params={"category": category}, headers=bearer("alice"))
    admin_again = lists.get("/products", params={"category": category}, headers=ADMIN)

    assert as_admin.json()["total"] == admin_again.json()["total"] == 2 and "age" in admin_again.headers
    assert anonymous.json()["total"] == customer.json()["total"] == 0
    assert customer.headers["cache-control"] == admin_again.headers["cache-control"] == "private, no-cache"


def test_revalidating_a_cached_page_is_not_modified(gateway, lists):
    category, _ = new_category(gateway)
    etag = lists.get("/products", params={"category": category}).headers["etag"]

    response = lists.get("/products", params={"category": category}, headers={"If-None-Match": etag})

    assert response.status_code == 304 and response.content == b""
    assert response.headers["etag"] == etag and "age" in response.headers


def test_a_search_is_answered_from_memory_and_a_bad_query_is_still_refused(gateway, searches):
    term = unique("jugged")
    gateway.post("/products", headers=ADMIN, json={"sku": unique("FIND"), "name": f"A {term}", "brand": "Pour",
                                                    "price": {"amount": "3.00", "currency": "EUR"}})

    first = searches.get("/search", params={"q": term})
    second = searches.get("/search", params={"q": term})
    refused = searches.get("/search", params={"q": "j"})

    assert first.json()["total"] == 1 and "age" not in first.headers
    assert second.content == first.content and "age" in second.headers
    assert refused.status_code == 422


def test_a_write_through_this_process_forgets_every_page_at_once(gateway, in_process_store):
    category, ids = new_category(gateway)
    in_process_store(PRODUCT_CACHE_TTL_SECONDS=str(LONG_TTL))
    query = ProductQuery(category=category)

    async def read_write_read():
        _, cached_before = await store.listing(query, include_inactive=False)
        _, cached_again = await store.listing(query, include_inactive=False)
        await store.update(ids[0], ProductUpdate(name="Renamed Jug"), versions=None)
        after, cached_after = await store.listing(query, include_inactive=False)
        return cached_before, cached_again, cached_after, after

    cached_before, cached_again, cached_after, after = asyncio.run(read_write_read())

    assert (cached_before, cached_again, cached_after) == (False, True, False)
    assert "Renamed Jug" in {item["name"] for item in json.loads(after.body)["items"]}


class _Commands(monitoring.CommandListener):
    """The commands the store sends while `recording` (pymongo listeners apply to clients created later)."""

    def __init__(self):
        self.recording, self.names = False, []

    def started(self, event):
        if self.recording:
            self.names.append(event.command_name)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


_COMMANDS = _Commands()
monitoring.register(_COMMANDS)


@pytest.mark.parametrize("limit, offset, commands, total", [
    (3, 0, ["find"], 3),  # the page ends the selection: the fetched page is its count
    (5, 0, ["find"], 3),
    (2, 2, ["find"], 3),
    (2, 0, ["find", "aggregate"], 3),  # more follow: counted (count_documents is an aggregate)
    (2, 5, ["find", "aggregate"], 3),  # past the end: counted, to answer the total
])
def test_a_page_is_counted_only_when_it_does_not_end_the_selection(gateway, in_process_store, limit, offset,
                                                                   commands, total):
    category, _ = new_category(gateway)
    in_process_store()
    query = ProductQuery(category=category, limit=limit, offset=offset)

    async def page():
        await store.find(ProductQuery(category=category), include_inactive=False)  # connected, schema checked
        _COMMANDS.names.clear()
        _COMMANDS.recording = True
        try:
            return await store.find(query, include_inactive=False)
        finally:
            _COMMANDS.recording = False

    found = asyncio.run(page())

    assert _COMMANDS.names == commands
    assert (found.total, found.total_exact) == (total, True)
