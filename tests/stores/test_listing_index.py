"""Every listing query walks one of the catalog's indexes in the query's own order, so real MongoDB reads a page's
limit of keys and has no SORT stage: the page costs the same whatever the catalog's size.

SecantusDB cannot show this (it collects every index match and sorts them in Python whatever the query, and its
`explain` has a SORT stage for any sort on two fields), so the shape is pinned instead: the queries the running
function really sends, read back from the server's profiler, must match an index of `store.INDEXES` field by
field — the filter's equalities first, then the sort, forwards or backwards."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from pymongo import MongoClient

from functions.catalog import cursor
from functions.catalog.models import ProductCreate
from functions.catalog.store import INDEXES, new_document
from local.migrate import run_step
from tests.support import function_alone, unique

KEYS = [list(index.document["key"].items()) for index in INDEXES]


def _equalities(conditions: dict) -> set[str]:
    """The fields a filter pins to one value (what bounds an index's leading fields to a point)."""
    fields = set()
    for field, value in conditions.items():
        if field == "$and":
            fields |= set().union(*(_equalities(part) for part in value))
        elif not field.startswith("$") and not (isinstance(value, dict) and any(key.startswith("$") for key in value)):
            fields.add(field)
    return fields


def _fields(conditions: dict) -> set[str]:
    """Every field a filter names, inside `$and` and `$or` too."""
    fields = set()
    for field, value in conditions.items():
        if field in ("$and", "$or"):
            fields |= set().union(*(_fields(part) for part in value))
        elif not field.startswith("$"):
            fields.add(field)
    return fields


def _walks_in_order(conditions: dict, sort: list[tuple[str, int]], key: list[tuple[str, int]]) -> bool:
    """Whether an index on `key` answers `conditions` in `sort` order by walking its keys: its leading fields
    are exactly the filter's equalities, the sort follows them (every direction the same or every one reversed),
    and every other condition is on a field of the key."""
    equal = _equalities(conditions)
    if {field for field, _ in key[:len(equal)]} != equal or not _fields(conditions) <= dict(key).keys():
        return False
    following = key[len(equal):len(equal) + len(sort)]
    return following in (sort, [(field, -direction) for field, direction in sort])


@pytest.fixture(scope="module")
def listing(shop_settings):
    """The listing function alone on a migrated database of its own, every operation there profiled."""
    database = unique("listing").replace("-", "_")
    settings = {**shop_settings, "MONGODB_DATABASE": database}
    run_step(settings)
    now = datetime.now(timezone.utc)
    with MongoClient(settings["MONGODB_URL"], tz_aware=True) as client:
        client[database]["products"].insert_many([new_document(ProductCreate(
            sku=unique("LAMP"), name=f"Lamp {number}", brand="Glow", categories=["lamps"], stock_quantity=1,
            price={"amount": f"{10 + number}.00", "currency": "EUR"}), now + timedelta(milliseconds=number))
            for number in range(3)])
        client[database].command("profile", 2)
        try:
            with function_alone("catalog-list-products", settings) as running:
                yield running.url, client[database]
        finally:
            client.drop_database(database)


def _sent(profiled, request) -> list[dict]:
    """The commands the products collection received while `request` ran."""
    entries = profiled["system.profile"]
    before = entries.count_documents({})
    request()
    return [entry["command"] for entry in entries.find({}).sort("ts", 1).skip(before)
            if entry["ns"] == f"{profiled.name}.products"]


@pytest.mark.parametrize("category", ["lamps", None])
@pytest.mark.parametrize("sort", list(cursor.SORTS))
def test_each_listing_page_walks_an_index_in_its_order(listing, sort, category):
    url, profiled = listing
    params = {"sort": sort, "limit": 1, **({"category": category} if category else {})}
    pages = []

    def first_then_next():
        pages.append(httpx.get(f"{url}/products", params=params, timeout=10).json())
        pages.append(httpx.get(f"{url}/products", params={**params, "after": pages[0]["next"]}, timeout=10).json())

    sent = _sent(profiled, first_then_next)
    finds = [command for command in sent if "find" in command]
    counts = [command["pipeline"][0]["$match"] for command in sent if "aggregate" in command]

    assert [len(page["items"]) for page in pages] == [1, 1] and len(finds) == 2 and counts
    for find in finds:
        assert find["limit"] == 2
        assert any(_walks_in_order(find["filter"], list(find["sort"].items()), key) for key in KEYS), find
    for match in counts:  # the count stays on an index too: its equalities bound one's leading fields
        assert any(_walks_in_order(match, [], key) for key in KEYS), match


def test_a_sort_no_index_holds_in_order_is_told_apart():
    listed = {"is_active": True, "categories": "lamps"}

    assert not any(_walks_in_order(listed, [("created_at", -1), ("_id", 1)], key) for key in KEYS)
    assert not any(_walks_in_order(listed, [("stock_quantity", 1), ("_id", 1)], key) for key in KEYS)
    assert not any(_walks_in_order({**listed, "brand_key": "glow"}, cursor.SORTS["name"], key) for key in KEYS)
    assert not any(_walks_in_order({"is_active": True, "categories": {"$in": ["lamps", "mugs"]}},
                                   cursor.SORTS["name"], key) for key in KEYS)
    assert any(_walks_in_order(listed, cursor.SORTS["-price"], key) for key in KEYS)
