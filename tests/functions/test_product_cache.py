"""The per-instance product cache: what it answers, how stale it may be, and what it tells caches in front of it.

The session's shop runs with the cache off (read-after-write tests); these tests run get-product alone with it on,
reading the session's store, while writes go through the gateway's update-product: another instance.
"""

from __future__ import annotations

import asyncio
import json
import time

from functions.catalog import store
from functions.catalog.models import ProductUpdate
from tests.support import ADMIN, bearer, caching_fixture, unique

LONG_TTL, SHORT_TTL = 60, 1


def new_product(gateway, **overrides) -> str:
    body = {"sku": unique("CACHE"), "name": "Cached Kettle", "price": {"amount": "30.00", "currency": "EUR"},
            "brand": "Boil", "stock_quantity": 7, **overrides}
    response = gateway.post("/products", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()["id"]


# get-product with a TTL longer than any test: what it read once, it answers from memory.
cached = caching_fixture("catalog-get-product", LONG_TTL)
briefly_cached = caching_fixture("catalog-get-product", SHORT_TTL)


def test_a_second_read_is_answered_from_memory_with_its_age(gateway, cached):
    product_id = new_product(gateway)

    first = cached.get(f"/products/{product_id}")
    second = cached.get(f"/products/{product_id}")

    assert first.status_code == second.status_code == 200
    assert "age" not in first.headers  # read from the store for this request
    assert int(second.headers["age"]) <= LONG_TTL
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"] == '"v1"'


def test_a_write_elsewhere_is_not_seen_before_the_ttl(gateway, cached):
    product_id = new_product(gateway)
    cached.get(f"/products/{product_id}")

    gateway.patch(f"/products/{product_id}", json={"stock_adjustment": -2}, headers=ADMIN)
    response = cached.get(f"/products/{product_id}")

    assert response.json()["stock_quantity"] == 7 and response.headers["etag"] == '"v1"'  # within the bound


def test_a_write_elsewhere_is_seen_once_the_ttl_has_passed(gateway, briefly_cached):
    product_id = new_product(gateway)
    assert briefly_cached.get(f"/products/{product_id}").json()["stock_quantity"] == 7

    gateway.patch(f"/products/{product_id}", json={"stock_adjustment": -2}, headers=ADMIN)
    time.sleep(SHORT_TTL)  # the staleness bound: after it, every read shows the write
    response = briefly_cached.get(f"/products/{product_id}")

    assert response.json()["stock_quantity"] == 5
    assert response.headers["etag"] == '"v2"'


def test_a_write_through_this_process_is_seen_at_once(gateway, in_process_store):
    product_id = new_product(gateway)
    in_process_store(PRODUCT_CACHE_TTL_SECONDS=str(LONG_TTL))

    async def read_write_read():
        _, cached_before = await store.read(product_id, include_inactive=False)
        _, cached_again = await store.read(product_id, include_inactive=False)
        await store.update(product_id, ProductUpdate(name="Renamed Kettle"), versions=None)
        after, cached_after = await store.read(product_id, include_inactive=False)
        return cached_before, cached_again, cached_after, after

    cached_before, cached_again, cached_after, after = asyncio.run(read_write_read())

    assert (cached_before, cached_again, cached_after) == (False, True, False)
    assert json.loads(after.body)["name"] == "Renamed Kettle" and after.version == 2


def test_a_cached_inactive_product_stays_hidden_from_customers(gateway, cached):
    product_id = new_product(gateway, is_active=False)

    as_admin = cached.get(f"/products/{product_id}", headers=ADMIN)  # puts it in memory
    anonymous = cached.get(f"/products/{product_id}")
    customer = cached.get(f"/products/{product_id}", headers=bearer("alice"))
    admin_again = cached.get(f"/products/{product_id}", headers=ADMIN)

    assert as_admin.status_code == admin_again.status_code == 200 and "age" in admin_again.headers
    assert anonymous.status_code == customer.status_code == 404


def test_anonymous_answers_may_be_kept_by_an_edge_for_the_ttl_and_token_answers_are_private(gateway, cached):
    product_id = new_product(gateway)

    anonymous = cached.get(f"/products/{product_id}")
    customer = cached.get(f"/products/{product_id}", headers=bearer("alice"))

    assert anonymous.headers["cache-control"] == f"public, max-age={LONG_TTL}, stale-while-revalidate={LONG_TTL}"
    assert customer.headers["cache-control"] == "private, no-cache"
    assert anonymous.headers["vary"] == customer.headers["vary"] == "Authorization"


def test_the_cache_off_answers_must_revalidate(gateway):
    response = gateway.get(f"/products/{new_product(gateway)}")  # the session's shop runs with a TTL of 0

    assert response.headers["cache-control"] == "no-cache" and "age" not in response.headers


def test_revalidating_a_cached_product_is_not_modified(gateway, cached):
    product_id = new_product(gateway)
    etag = cached.get(f"/products/{product_id}").headers["etag"]

    response = cached.get(f"/products/{product_id}", headers={"If-None-Match": etag})

    assert response.status_code == 304 and response.content == b""
    assert response.headers["etag"] == etag and "age" in response.headers
