"""Admin stock edits: relative (`stock_adjustment`) or conditional (`If-Match`), never losing a reservation."""

from __future__ import annotations

import asyncio
import random
import uuid

import httpx
import pytest

from tests.support import ADMIN, assert_problem, bearer, function_alone, service_headers, unique


def new_product(gateway, stock: int) -> dict:
    body = {"sku": unique("EDIT"), "name": "Edit Lamp", "price": {"amount": "20.00", "currency": "EUR"},
            "brand": "Lumina", "stock_quantity": stock}
    response = gateway.post("/products", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def patch(gateway, product: dict, body: dict, if_match: str | None = None) -> httpx.Response:
    headers = {**ADMIN, "If-Match": if_match} if if_match is not None else ADMIN
    return gateway.patch(f"/products/{product['id']}", json=body, headers=headers)


def current(gateway, product: dict) -> httpx.Response:
    response = gateway.get(f"/products/{product['id']}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response


def stock_of(gateway, product: dict) -> int:
    return current(gateway, product).json()["stock_quantity"]


@pytest.fixture(scope="module")
def reservations(shop):
    return shop.functions["catalog-reserve-stock"].url + "/internal/stock/reservations"


def test_a_stock_adjustment_adds_and_removes_units(gateway):
    lamp = new_product(gateway, 5)

    added = patch(gateway, lamp, {"stock_adjustment": 7})
    removed = patch(gateway, lamp, {"stock_adjustment": -10})

    assert added.status_code == 200 and added.json()["stock_quantity"] == 12
    assert removed.status_code == 200 and removed.json()["stock_quantity"] == 2
    assert stock_of(gateway, lamp) == 2


def test_an_adjustment_below_zero_is_a_conflict_and_changes_nothing(gateway):
    lamp = new_product(gateway, 3)
    before = current(gateway, lamp)

    body = assert_problem(patch(gateway, lamp, {"stock_adjustment": -4, "name": "Not Renamed"}), 409)

    assert body["stock_quantity"] == 3 and body["errors"][0]["field"] == "body.stock_adjustment"
    after = current(gateway, lamp)
    assert after.json() == before.json() and after.headers["etag"] == before.headers["etag"]


def test_an_adjustment_past_the_maximum_stock_is_a_conflict(gateway):
    lamp = new_product(gateway, 999_999)

    assert_problem(patch(gateway, lamp, {"stock_adjustment": 2}), 409)
    assert patch(gateway, lamp, {"stock_adjustment": 1}).json()["stock_quantity"] == 1_000_000


def test_an_adjustment_can_remove_every_unit(gateway):
    lamp = new_product(gateway, 4)

    assert patch(gateway, lamp, {"stock_adjustment": -4}).json()["stock_quantity"] == 0


@pytest.mark.parametrize("if_match", [None, "*"])
def test_setting_stock_without_a_version_is_precondition_required(gateway, if_match):
    lamp = new_product(gateway, 5)

    body = assert_problem(patch(gateway, lamp, {"stock_quantity": 12}, if_match), 428)

    assert "If-Match" in body["detail"] and "stock_adjustment" in body["detail"]
    assert stock_of(gateway, lamp) == 5


def test_setting_stock_with_a_stale_etag_is_precondition_failed(gateway):
    lamp = new_product(gateway, 5)
    stale = current(gateway, lamp).headers["etag"]
    patch(gateway, lamp, {"stock_adjustment": -1})

    body = assert_problem(patch(gateway, lamp, {"stock_quantity": 12}, stale), 412)

    assert '"v2"' in body["detail"]
    assert stock_of(gateway, lamp) == 4


def test_setting_stock_with_the_current_etag_succeeds_and_moves_the_etag(gateway):
    lamp = new_product(gateway, 5)
    fresh = current(gateway, lamp).headers["etag"]

    response = patch(gateway, lamp, {"stock_quantity": 12}, fresh)

    assert response.status_code == 200 and response.json()["stock_quantity"] == 12
    assert response.headers["etag"] != fresh
    assert response.headers["etag"] == current(gateway, lamp).headers["etag"]
    assert_problem(patch(gateway, lamp, {"stock_quantity": 1}, fresh), 412)


def test_if_match_may_list_several_etags(gateway):
    lamp = new_product(gateway, 5)
    fresh = current(gateway, lamp).headers["etag"]

    assert patch(gateway, lamp, {"stock_quantity": 6}, f'"v99", {fresh}').status_code == 200


@pytest.mark.parametrize("if_match", ['W/"v1"', "v1", '"1"', '"v01"', '"v1" junk', "", '"v99999999999999999999"'])
def test_a_weak_malformed_or_foreign_if_match_is_precondition_failed(gateway, if_match):
    lamp = new_product(gateway, 5)

    assert_problem(patch(gateway, lamp, {"stock_quantity": 6}, if_match), 412)
    assert stock_of(gateway, lamp) == 5


def test_if_match_on_other_fields_is_honoured(gateway):
    lamp = new_product(gateway, 5)
    fresh = current(gateway, lamp).headers["etag"]

    assert patch(gateway, lamp, {"name": "First"}, fresh).status_code == 200
    assert_problem(patch(gateway, lamp, {"name": "Second"}, fresh), 412)
    assert current(gateway, lamp).json()["name"] == "First"


def test_other_fields_without_if_match_update_as_before(gateway):
    lamp = new_product(gateway, 5)
    patch(gateway, lamp, {"stock_adjustment": 1})

    assert patch(gateway, lamp, {"name": "Last Write Wins"}).status_code == 200


def test_if_match_on_an_unknown_product_is_not_found(gateway):
    unknown = {"id": "a" * 24}

    assert_problem(patch(gateway, unknown, {"stock_quantity": 1}, '"v1"'), 404)
    assert_problem(patch(gateway, unknown, {"stock_adjustment": -1}), 404)


def test_setting_stock_after_a_reservation_needs_the_new_etag(gateway, reservations):
    lamp = new_product(gateway, 5)
    seen = current(gateway, lamp).headers["etag"]
    reserved = httpx.post(reservations, json={"reservation_id": str(uuid.uuid4()),
                                              "lines": [{"sku": lamp["sku"], "quantity": 2}]}, timeout=10,
                          headers=service_headers("catalog-reserve-stock"))
    assert reserved.status_code == 201, reserved.text

    assert_problem(patch(gateway, lamp, {"stock_quantity": 5}, seen), 412)
    assert stock_of(gateway, lamp) == 3


@pytest.mark.parametrize("initial, adjustments, reservation_count", [
    (1000, [5, -3, 7, -2] * 10, 40),  # plenty: every change lands
    (15, [-3, 2, -1, 4, -5] * 6, 30),  # scarce: some are refused, and a refusal changes nothing
])
def test_concurrent_adjustments_and_reservations_never_lose_a_unit(shop, gateway, reservations, initial,
                                                                   adjustments, reservation_count):
    lamp = new_product(gateway, initial)
    requests = [("adjust", units) for units in adjustments] + [("reserve", 1)] * reservation_count
    random.Random(initial).shuffle(requests)

    async def until_answered(call) -> httpx.Response:
        """A 503 (the store slower than its timeout on a loaded machine) may or may not have applied: the same
        request again, Idempotency-Key or reservation id included, applies it once either way."""
        for _ in range(5):
            response = await call()
            if response.status_code != 503:
                return response
            await asyncio.sleep(0.5)
        return response

    async def send(client: httpx.AsyncClient, kind: str, units: int) -> tuple[str, int]:
        if kind == "adjust":
            headers = {**ADMIN, "Idempotency-Key": uuid.uuid4().hex}
            response = await until_answered(lambda: client.patch(
                f"/products/{lamp['id']}", json={"stock_adjustment": units}, headers=headers))
            assert response.status_code in (200, 409), response.text
            return kind, units if response.status_code == 200 else 0
        body = {"reservation_id": str(uuid.uuid4()), "lines": [{"sku": lamp["sku"], "quantity": units}]}
        response = await until_answered(lambda: client.post(reservations, json=body,
                                                            headers=service_headers("catalog-reserve-stock")))
        assert response.status_code in (200, 201, 409), response.text  # 200: made by the try that answered 503
        return kind, units if response.status_code in (200, 201) else 0

    async def send_all() -> list[tuple[str, int]]:
        async with httpx.AsyncClient(base_url=shop.url, timeout=30) as client:
            return await asyncio.gather(*(send(client, kind, units) for kind, units in requests))

    outcomes = asyncio.run(send_all())

    adjusted = sum(units for kind, units in outcomes if kind == "adjust")
    reserved = sum(units for kind, units in outcomes if kind == "reserve")
    assert stock_of(gateway, lamp) == initial + adjusted - reserved
    if initial == 1000:
        assert adjusted == sum(adjustments) and reserved == reservation_count


def test_stock_given_back_past_the_maximum_an_admin_may_set_is_still_read(shop, gateway, reservations):
    lamp, reservation = new_product(gateway, 5), str(uuid.uuid4())
    reserved = httpx.post(reservations, json={"reservation_id": reservation,
                                              "lines": [{"sku": lamp["sku"], "quantity": 2}]}, timeout=10,
                          headers=service_headers("catalog-reserve-stock"))
    assert reserved.status_code == 201, reserved.text
    assert patch(gateway, lamp, {"stock_quantity": 1_000_000}, current(gateway, lamp).headers["etag"]).status_code == 200
    released = httpx.delete(f"{shop.functions['catalog-release-stock'].url}/internal/stock/reservations/{reservation}",
                            timeout=10, headers=service_headers("catalog-release-stock"))
    assert released.status_code == 200, released.text

    assert stock_of(gateway, lamp) == 1_000_002  # the held units came back on top: read, not a 500
    assert gateway.get("/search", params={"q": lamp["sku"]}).status_code == 200


def keyed(gateway, product: dict, body: dict, key: str, if_match: str | None = None) -> httpx.Response:
    headers = {**ADMIN, "Idempotency-Key": key} | ({"If-Match": if_match} if if_match is not None else {})
    return gateway.patch(f"/products/{product['id']}", json=body, headers=headers)


def test_a_key_recorded_in_the_spelling_before_senders_key_still_replays(gateway, mongo_url, shop_settings):
    """A retry across the deploy that changed how keys are recorded ("<sub> <key>" then) is not applied again."""
    from bson import ObjectId
    from pymongo import MongoClient

    from functions.catalog.models import ProductUpdate, change_fingerprint

    lamp, key = new_product(gateway, 5), unique("adjust")
    fingerprint = change_fingerprint(ProductUpdate.model_validate({"stock_adjustment": 7}), None)
    with MongoClient(mongo_url) as client:  # what the release before wrote with the adjustment
        client[shop_settings["MONGODB_DATABASE"]].products.update_one(
            {"_id": ObjectId(lamp["id"])}, {"$inc": {"stock_quantity": 7, "version": 1},
                                            "$push": {"change_keys": {"k": f"ops {key}", "f": fingerprint}}})

    retried = keyed(gateway, lamp, {"stock_adjustment": 7}, key)

    assert retried.status_code == 200 and retried.headers["idempotent-replayed"] == "true"
    assert stock_of(gateway, lamp) == 12


def test_a_keyed_adjustment_sent_again_is_applied_once_and_marked_replayed(gateway):
    lamp = new_product(gateway, 5)
    key = unique("adjust")

    first = keyed(gateway, lamp, {"stock_adjustment": 7}, key)
    again = keyed(gateway, lamp, {"stock_adjustment": 7}, key)

    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and again.headers["etag"] == first.headers["etag"]
    assert stock_of(gateway, lamp) == 12
    assert "change_keys" not in current(gateway, lamp).json()


def test_a_replay_answers_the_product_as_it_is_now(gateway):
    lamp = new_product(gateway, 5)
    key = unique("adjust")
    keyed(gateway, lamp, {"stock_adjustment": -2}, key)
    latest = patch(gateway, lamp, {"name": "Renamed Since"})

    again = keyed(gateway, lamp, {"stock_adjustment": -2}, key)

    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == latest.json() and again.headers["etag"] == latest.headers["etag"]
    assert stock_of(gateway, lamp) == 3


def test_a_keyed_change_with_if_match_sent_again_is_a_replay_not_a_stale_etag(gateway):
    lamp = new_product(gateway, 5)
    fresh, key = current(gateway, lamp).headers["etag"], unique("set")

    assert keyed(gateway, lamp, {"stock_quantity": 9}, key, fresh).status_code == 200
    again = keyed(gateway, lamp, {"stock_quantity": 9}, key, fresh)

    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert_problem(patch(gateway, lamp, {"stock_quantity": 9}, fresh), 412)  # without the key: stale, as before


@pytest.mark.parametrize("other", [{"body": {"stock_adjustment": 8}}, {"body": {"stock_adjustment": 7, "name": "X"}},
                                   {"body": {"stock_adjustment": 7}, "if_match": '"v1"'},
                                   {"body": {"stock_adjustment": 7}, "if_match": "*"}])
def test_a_key_sent_again_with_another_change_is_refused_and_changes_nothing(gateway, other):
    lamp = new_product(gateway, 5)
    key = unique("adjust")
    keyed(gateway, lamp, {"stock_adjustment": 7}, key)
    before = current(gateway, lamp)

    body = assert_problem(keyed(gateway, lamp, other["body"], key, other.get("if_match")), 422)

    assert body["errors"][0]["type"] == "idempotency_key_reused"
    assert current(gateway, lamp).json() == before.json()


def test_any_keyed_change_is_replayed_not_only_stock(gateway):
    lamp = new_product(gateway, 5)
    key = unique("rename")
    first = keyed(gateway, lamp, {"name": "Renamed Once", "is_active": False}, key)

    again = keyed(gateway, lamp, {"name": "Renamed Once", "is_active": False}, key)

    assert again.headers["idempotent-replayed"] == "true" and again.headers["etag"] == first.headers["etag"] == '"v2"'


def test_the_same_key_from_another_admin_names_another_change(gateway):
    lamp = new_product(gateway, 5)
    key = unique("restock")
    keyed(gateway, lamp, {"stock_adjustment": 2}, key)

    other = gateway.patch(f"/products/{lamp['id']}", json={"stock_adjustment": 2},
                          headers={**bearer("ops-night", "admin"), "Idempotency-Key": key})

    assert other.status_code == 200 and "idempotent-replayed" not in other.headers
    assert stock_of(gateway, lamp) == 9


def test_without_a_key_an_adjustment_sent_twice_applies_twice(gateway):
    lamp = new_product(gateway, 5)

    patch(gateway, lamp, {"stock_adjustment": 2})
    patch(gateway, lamp, {"stock_adjustment": 2})

    assert stock_of(gateway, lamp) == 9


def test_a_key_names_a_change_of_one_product_only(gateway):
    lamp, other = new_product(gateway, 5), new_product(gateway, 5)
    key = unique("adjust")

    keyed(gateway, lamp, {"stock_adjustment": 1}, key)
    response = keyed(gateway, other, {"stock_adjustment": 1}, key)

    assert response.status_code == 200 and "idempotent-replayed" not in response.headers
    assert stock_of(gateway, lamp) == stock_of(gateway, other) == 6


def test_a_refused_keyed_adjustment_is_not_remembered(gateway):
    lamp = new_product(gateway, 1)
    key = unique("adjust")

    assert_problem(keyed(gateway, lamp, {"stock_adjustment": -3}, key), 409)
    patch(gateway, lamp, {"stock_adjustment": 5})
    response = keyed(gateway, lamp, {"stock_adjustment": -3}, key)

    assert response.status_code == 200 and "idempotent-replayed" not in response.headers
    assert stock_of(gateway, lamp) == 3


@pytest.mark.parametrize("key", ["a", "~" * 64, "!#$%&'()*+,-./:;<=>?@[]^_`{|}"])
def test_keys_of_1_to_64_visible_ascii_characters_are_accepted(gateway, key):
    lamp = new_product(gateway, 5)

    assert keyed(gateway, lamp, {"stock_adjustment": 1}, key).status_code == 200
    assert keyed(gateway, lamp, {"stock_adjustment": 1}, key).headers["idempotent-replayed"] == "true"
    assert stock_of(gateway, lamp) == 6


@pytest.mark.parametrize("key", ["", "x" * 65, "two words", "caf\u00e9"])
def test_a_malformed_idempotency_key_is_a_bad_request_and_changes_nothing(gateway, key):
    lamp = new_product(gateway, 5)

    response = gateway.patch(f"/products/{lamp['id']}", json={"stock_adjustment": 1},
                             headers={**ADMIN, "Idempotency-Key": key.encode()})

    assert assert_problem(response, 400)["errors"][0]["field"] == "header.Idempotency-Key"
    assert stock_of(gateway, lamp) == 5


def test_concurrent_copies_of_a_keyed_adjustment_apply_it_once(gateway, shop):
    lamp = new_product(gateway, 5)
    key, url = unique("adjust"), f"{shop.url}/products/{lamp['id']}"

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.patch(url, json={"stock_adjustment": 3}, headers={**ADMIN, "Idempotency-Key": key})

    async def copies():
        return await asyncio.gather(*(send() for _ in range(8)))

    answers = asyncio.run(copies())

    assert [a.status_code for a in answers] == [200] * 8
    assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
    assert stock_of(gateway, lamp) == 8


def test_a_product_remembers_its_last_keys_kept_keyed_changes(gateway):
    from functions.catalog.store import KEYS_KEPT

    assert KEYS_KEPT == 100  # the number the README and openapi.json give
    lamp = new_product(gateway, 0)
    first = unique("adjust")
    keyed(gateway, lamp, {"stock_adjustment": 1}, first)
    for n in range(KEYS_KEPT - 1):
        keyed(gateway, lamp, {"stock_adjustment": 1}, f"{first}-{n}")

    assert keyed(gateway, lamp, {"stock_adjustment": 1}, first).headers.get("idempotent-replayed") == "true"
    keyed(gateway, lamp, {"stock_adjustment": 1}, f"{first}-last")  # the KEYS_KEPT + 1st: the first is forgotten
    assert "idempotent-replayed" not in keyed(gateway, lamp, {"stock_adjustment": 1}, first).headers
    assert stock_of(gateway, lamp) == KEYS_KEPT + 2


def test_a_keyed_adjustment_whose_instance_died_after_the_write_is_applied_once_on_retry(gateway, shop):
    lamp = new_product(gateway, 5)
    key = unique("adjust")
    with function_alone("catalog-update-product",
                        {**shop.settings, "SHOP_TEST_FAULTS": "catalog.update.after-write=crash"}) as dying:
        with pytest.raises(httpx.TransportError):  # SIGKILLed after the write, before the answer (shared/faults.py)
            httpx.patch(f"{dying.url}/products/{lamp['id']}", json={"stock_adjustment": 4},
                        headers={**ADMIN, "Idempotency-Key": key}, timeout=10)

    retried = keyed(gateway, lamp, {"stock_adjustment": 4}, key)

    assert retried.status_code == 200 and retried.headers["idempotent-replayed"] == "true"
    assert stock_of(gateway, lamp) == 9
