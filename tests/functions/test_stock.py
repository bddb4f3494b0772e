"""Stock reservations in the catalog: concurrent, all-or-nothing, idempotent."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pymongo import MongoClient
from local.processes import free_port
from tests.support import ADMIN, assert_problem, function_alone, service_headers, tick, unique


def sweep(shop) -> int:
    return shop.ping("catalog-expire-reservations")


def releasing() -> dict[str, str]:
    return service_headers("catalog-release-stock")


def confirming() -> dict[str, str]:
    return service_headers("catalog-confirm-stock")


@pytest.fixture(scope="module")
def reservations(shop):
    return shop.functions["catalog-reserve-stock"].url + "/internal/stock/reservations"


@pytest.fixture(scope="module")
def confirms(shop):
    base = shop.functions["catalog-confirm-stock"].url + "/internal/stock/reservations"
    return lambda reservation_id: f"{base}/{reservation_id}/confirm"


@pytest.fixture(scope="module")
def releases(shop):
    return shop.functions["catalog-release-stock"].url + "/internal/stock/reservations"


def product(gateway, stock, **overrides):
    body = {"sku": unique("STOCK"), "name": "Stock Lamp", "price": {"amount": "20.00", "currency": "EUR"},
            "brand": "Lumina", "stock_quantity": stock, **overrides}
    created = gateway.post("/products", json=body, headers=ADMIN)
    assert created.status_code == 201
    return created.json()


def stock_of(gateway, item) -> int:
    return gateway.get(f"/products/{item['id']}", headers=ADMIN).json()["stock_quantity"]


def reserve(url, *lines, reservation_id=None):
    body = {"reservation_id": reservation_id or str(uuid.uuid4()),
            "lines": [{"sku": item["sku"], "quantity": quantity} for item, quantity in lines]}
    return httpx.post(url, json=body, timeout=10, headers=service_headers("catalog-reserve-stock"))


def test_reserving_takes_stock_and_answers_names_and_prices(gateway, reservations):
    lamp = product(gateway, 5)

    response = reserve(reservations, (lamp, 2))

    assert response.status_code == 201
    assert response.json()["lines"] == [{"sku": lamp["sku"], "quantity": 2, "name": "Stock Lamp",
                                         "price": {"amount": "20.00", "currency": "EUR"}}]
    assert stock_of(gateway, lamp) == 3


def test_a_reservation_is_all_lines_or_none(gateway, reservations):
    plenty, scarce = product(gateway, 10), product(gateway, 1)

    body = assert_problem(reserve(reservations, (plenty, 3), (scarce, 2)), 409)

    assert body["errors"][0]["message"] == scarce["sku"]
    assert stock_of(gateway, plenty) == 10 and stock_of(gateway, scarce) == 1


def test_unknown_and_inactive_products_are_refused(gateway, reservations):
    hidden = product(gateway, 5, is_active=False)

    assert_problem(reserve(reservations, ({"sku": "NO-SUCH"}, 1)), 404)
    assert_problem(reserve(reservations, (hidden, 1)), 422)
    assert stock_of(gateway, hidden) == 5


def test_reserve_and_release_are_idempotent(gateway, reservations, releases):
    lamp = product(gateway, 5)
    reservation_id = str(uuid.uuid4())

    assert reserve(reservations, (lamp, 2), reservation_id=reservation_id).status_code == 201
    assert reserve(reservations, (lamp, 2), reservation_id=reservation_id).status_code == 200
    assert_problem(reserve(reservations, (lamp, 1), reservation_id=reservation_id), 409)
    assert stock_of(gateway, lamp) == 3
    for _ in range(3):
        released = httpx.delete(f"{releases}/{reservation_id}", headers=releasing())
        assert released.status_code == 200 and released.json()["state"] == "released"

    assert stock_of(gateway, lamp) == 5


def test_releasing_an_unknown_id_leaves_a_tombstone_so_a_late_reserve_takes_nothing(gateway, reservations, releases):
    lamp, reservation_id = product(gateway, 5), str(uuid.uuid4())

    released = httpx.delete(f"{releases}/{reservation_id}", headers=releasing())
    late = reserve(reservations, (lamp, 2), reservation_id=reservation_id)

    assert released.status_code == 200 and released.json() == {"reservation_id": reservation_id, "state": "released",
                                                                "lines": []}
    assert assert_problem(late, 409)["type"].endswith("/reservation-released")
    assert stock_of(gateway, lamp) == 5


def test_a_confirmed_reservation_keeps_its_stock_and_cannot_be_released(gateway, reservations, releases, confirms):
    lamp, reservation_id = product(gateway, 5), str(uuid.uuid4())
    reserve(reservations, (lamp, 2), reservation_id=reservation_id)

    first = httpx.post(confirms(reservation_id), headers=confirming())
    again = httpx.post(confirms(reservation_id), headers=confirming())

    assert first.status_code == again.status_code == 200 and again.json()["state"] == "confirmed"
    assert_problem(httpx.delete(f"{releases}/{reservation_id}", headers=releasing()), 409)
    assert stock_of(gateway, lamp) == 3
    assert assert_problem(httpx.post(confirms(str(uuid.uuid4())), headers=confirming()), 404)


def test_a_released_reservation_cannot_be_confirmed(gateway, reservations, releases, confirms):
    lamp, reservation_id = product(gateway, 5), str(uuid.uuid4())
    reserve(reservations, (lamp, 2), reservation_id=reservation_id)
    httpx.delete(f"{releases}/{reservation_id}", headers=releasing())

    refused = assert_problem(httpx.post(confirms(reservation_id), headers=confirming()), 409)
    assert refused["type"].endswith("/reservation-released")
    assert stock_of(gateway, lamp) == 5


def test_a_refused_reservation_answers_the_same_refusal_again(gateway, reservations):
    plenty, scarce, reservation_id = product(gateway, 10), product(gateway, 1), str(uuid.uuid4())

    first = assert_problem(reserve(reservations, (plenty, 1), (scarce, 2), reservation_id=reservation_id), 409)
    scarce_restocked = gateway.patch(f"/products/{scarce['id']}", json={"stock_adjustment": 5}, headers=ADMIN)
    again = assert_problem(reserve(reservations, (plenty, 1), (scarce, 2), reservation_id=reservation_id), 409)

    assert scarce_restocked.status_code == 200
    assert first["type"] == again["type"] and first["errors"] == again["errors"]
    assert stock_of(gateway, plenty) == 10


def test_concurrent_reservations_never_oversell(gateway, reservations):
    lamp = product(gateway, 10)

    async def thirty():
        async with httpx.AsyncClient(timeout=20, headers=service_headers("catalog-reserve-stock")) as client:
            return await asyncio.gather(*(client.post(reservations, json={
                "reservation_id": str(uuid.uuid4()), "lines": [{"sku": lamp["sku"], "quantity": 1}]})
                for _ in range(30)))

    statuses = sorted(response.status_code for response in asyncio.run(thirty()))

    assert statuses == [201] * 10 + [409] * 20
    assert stock_of(gateway, lamp) == 0


@pytest.mark.parametrize("body", [{}, {"reservation_id": "x", "lines": []},
                                  {"reservation_id": "x", "lines": [{"sku": "A", "quantity": 0}]},
                                  {"reservation_id": "x", "lines": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 1}]},
                                  {"reservation_id": "has space", "lines": [{"sku": "A", "quantity": 1}]}])
def test_invalid_reservations_are_rejected(reservations, body):
    assert_problem(httpx.post(reservations, json=body, headers=service_headers("catalog-reserve-stock")), 422)


def test_the_sweep_releases_reservations_nobody_confirmed_in_time(gateway, shop, tmp_path):
    lamp, kept = product(gateway, 5), product(gateway, 5)
    settings = {**shop.settings, "RESERVATION_TTL_SECONDS": "0.5"}
    with function_alone("catalog-reserve-stock", settings, log=tmp_path / "reserve.log") as short_lived, \
            function_alone("catalog-expire-reservations", settings, metrics_port=(metrics := free_port()),
                           log=tmp_path / "expire.log") as expire:
        url = short_lived.url + "/internal/stock/reservations"
        reserve(url, (lamp, 2))
        confirmed_id = str(uuid.uuid4())
        reserve(url, (kept, 2), reservation_id=confirmed_id)
        assert httpx.post(shop.functions["catalog-confirm-stock"].url +
                          f"/internal/stock/reservations/{confirmed_id}/confirm", headers=confirming()).status_code == 200
        time.sleep(0.6)

        assert tick("catalog-expire-reservations", expire.url) == 200
        expired = counted(metrics, "shop_stock_reservations_expired_total")

    assert stock_of(gateway, lamp) == 5 and stock_of(gateway, kept) == 3
    assert expired >= 1  # this instance's count: the one nobody confirmed (and any other expired by now)


def test_the_sweep_gives_back_a_hold_left_on_a_released_reservation(gateway, shop, mongo_url, shop_settings,
                                                                    reservations, releases):
    lamp = _stale_hold(gateway, mongo_url, shop_settings, reservations, releases)

    assert sweep(shop) == 200

    assert stock_of(gateway, lamp) == 5


@pytest.mark.parametrize("malformed", ["x" * 65, "a.b", "$where", "id%20with%20space", "%C3%A9t%C3%A9"],
                         ids=["long", "dot", "dollar", "space", "non-ascii"])
def test_an_id_no_reservation_could_have_is_not_found_and_leaves_nothing(gateway, confirms, releases, mongo_url,
                                                                          shop_settings, malformed):
    released = httpx.delete(f"{releases}/{malformed}", timeout=10, headers=releasing())
    confirmed = httpx.post(confirms(malformed), timeout=10, headers=confirming())

    assert_problem(released, 404) and assert_problem(confirmed, 404)
    with MongoClient(mongo_url) as client:  # no tombstone either
        assert client[shop_settings["MONGODB_DATABASE"]].stock_reservations.count_documents(
            {"_id": {"$regex": "^(x{65}|a\\.b|\\$where|id with space|été)$"}}) == 0


def faulty(shop, tmp_path, name: str, step: str):
    once = tmp_path / f"once-{name}"
    once.mkdir()
    settings = {**shop.settings, "SHOP_TEST_FAULTS": f"{step}=crash", "SHOP_TEST_FAULTS_ONCE": str(once)}
    return function_alone(name, settings, log=tmp_path / f"{name}.log")


def test_a_release_killed_before_it_is_recorded_gives_the_stock_back_once(gateway, shop, tmp_path, reservations):
    lamp, reservation_id = product(gateway, 5), str(uuid.uuid4())
    reserve(reservations, (lamp, 2), reservation_id=reservation_id)
    with faulty(shop, tmp_path, "catalog-release-stock", "catalog.release.before-commit") as release:
        url = f"{release.url}/internal/stock/reservations/{reservation_id}"
        with pytest.raises(httpx.HTTPError):
            httpx.delete(url, timeout=10, headers=releasing())  # the stock is back, the reservation says `releasing`
        assert sweep(shop) == 200  # the sweep finishes it
        again = httpx.delete(url, timeout=10, headers=releasing())

    assert again.status_code == 200 and again.json()["state"] == "released"
    assert stock_of(gateway, lamp) == 5


def test_a_confirmation_killed_before_dropping_its_holds_keeps_the_stock_sold(gateway, shop, tmp_path, reservations,
                                                                             releases):
    lamp, reservation_id = product(gateway, 5), str(uuid.uuid4())
    reserve(reservations, (lamp, 2), reservation_id=reservation_id)
    with faulty(shop, tmp_path, "catalog-confirm-stock", "catalog.confirm.before-pull") as confirm:
        url = f"{confirm.url}/internal/stock/reservations/{reservation_id}/confirm"
        with pytest.raises(httpx.HTTPError):
            httpx.post(url, timeout=10, headers=confirming())
        assert sweep(shop) == 200  # drops the holds, gives nothing back
        again = httpx.post(url, timeout=10, headers=confirming())

    assert again.status_code == 200 and again.json()["state"] == "confirmed"
    assert_problem(httpx.delete(f"{releases}/{reservation_id}", headers=releasing()), 409)
    assert stock_of(gateway, lamp) == 3


def counted(metrics_port: int, sample: str) -> float:
    """The value of one sample (name and labels, as exposed) on a function's /metrics; 0 before its first count."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def holds_settled(shop, name: str, by: str) -> float:
    """shop_stock_holds_settled_total{by} as the shop's function `name` counts it."""
    return counted(shop.function_ports[name][1], f'shop_stock_holds_settled_total{{by="{by}"}}')


@pytest.mark.parametrize("settled_by", ["sweep", "confirmation"])
def test_a_hold_a_late_reserve_call_takes_after_a_dying_confirmation_dropped_the_holds_is_given_back(
        gateway, shop, tmp_path, reservations, confirms, settled_by):
    """A reserve call that outlived its caller holds a line again after the confirmation (which then dies) dropped
    the reservation's holds: that hold is not the one the confirmation sold, and the next sweep, or the
    confirmation's retry, gives it back (and counts it)."""
    first, second = sorted((product(gateway, 5), product(gateway, 5)), key=lambda item: item["sku"])
    reservation_id = str(uuid.uuid4())
    once = tmp_path / "once-reserve"
    once.mkdir()
    slow = {**shop.settings, "SHOP_TEST_FAULTS": "catalog.reserve.between-lines=sleep:6",
            "SHOP_TEST_FAULTS_ONCE": str(once)}
    with function_alone("catalog-reserve-stock", slow) as slow_reserve, \
            faulty(shop, tmp_path, "catalog-confirm-stock", "catalog.confirm.after-pull") as confirm, \
            ThreadPoolExecutor(1) as pool:
        # warmed (imports, connections) before the stall starts: its real request must fit in the stall
        assert httpx.post(f"{confirm.url}/internal/stock/reservations/{uuid.uuid4()}/confirm", timeout=10,
                          headers=confirming()).status_code == 404
        late = pool.submit(reserve, slow_reserve.url + "/internal/stock/reservations", (first, 1), (second, 1),
                           reservation_id=reservation_id)
        deadline = time.monotonic() + 30
        while stock_of(gateway, first) != 4 and time.monotonic() < deadline:  # the late call holds the first line
            time.sleep(0.05)  # and stalls before the second
        assert stock_of(gateway, first) == 4
        # its caller's retry completes the reservation
        assert reserve(reservations, (first, 1), (second, 1), reservation_id=reservation_id).status_code == 200
        with pytest.raises(httpx.HTTPError):  # the confirmation drops both holds and dies before recording it
            httpx.post(f"{confirm.url}/internal/stock/reservations/{reservation_id}/confirm", timeout=10,
                       headers=confirming())
        assert late.result().status_code in (200, 201)  # it held the second line once more, too late
        assert stock_of(gateway, second) == 3

    settling = {"sweep": "catalog-expire-reservations", "confirmation": "catalog-confirm-stock"}[settled_by]
    before = holds_settled(shop, settling, settled_by)
    if settled_by == "sweep":
        assert sweep(shop) == 200
    else:
        assert httpx.post(confirms(reservation_id), timeout=10, headers=confirming()).status_code == 200

    assert stock_of(gateway, first) == 4 and stock_of(gateway, second) == 4  # one unit of each sold, no more
    assert holds_settled(shop, settling, settled_by) >= before + 1


@pytest.fixture(params=["holds-and-lines", "lines-only", "holds-only"])
def written_before_tokens(request):
    return request.param


def test_a_reservation_written_before_holds_had_tokens_is_confirmed_as_sold(
        gateway, shop, mongo_url, shop_settings, reservations, confirms, written_before_tokens):
    """Written by a catalog from before the tokens (a rolling deploy): the holds and the reservation; only the
    reservation (an old instance completed what a new one began to hold); or only the holds (a new instance
    completed what an old one held: its line records no token, None). It confirms as before: sold."""
    lamp, reservation_id = product(gateway, 5), str(uuid.uuid4())
    assert reserve(reservations, (lamp, 2), reservation_id=reservation_id).status_code == 201
    with MongoClient(mongo_url) as client:
        database = client[shop_settings["MONGODB_DATABASE"]]
        if written_before_tokens in ("holds-and-lines", "holds-only"):
            database.products.update_one({"sku": lamp["sku"]}, {"$unset": {"hold_tokens": ""}})
        lines = database.stock_reservations.find_one({"_id": reservation_id})["lines"]
        if written_before_tokens == "holds-only":
            lines = [line | {"token": None} for line in lines]
        else:
            lines = [{key: value for key, value in line.items() if key != "token"} for line in lines]
        database.stock_reservations.update_one({"_id": reservation_id}, {"$set": {"lines": lines}})

    confirmed = httpx.post(confirms(reservation_id), timeout=10, headers=confirming())
    assert sweep(shop) == 200

    assert confirmed.status_code == 200 and confirmed.json()["state"] == "confirmed"
    assert stock_of(gateway, lamp) == 3
    with MongoClient(mongo_url) as client:
        assert client[shop_settings["MONGODB_DATABASE"]].products.find_one({"sku": lamp["sku"]})["holds"] == []


def test_a_late_hold_of_a_settled_confirmed_reservation_is_given_back_by_the_sweep(
        gateway, shop, mongo_url, shop_settings, reservations, confirms):
    """A late reserve call's hold that lands after the confirmation pulled the recorded holds (and did not die):
    the confirmation leaves it, the next sweep gives it back."""
    lamp, reservation_id = product(gateway, 5), str(uuid.uuid4())
    assert reserve(reservations, (lamp, 2), reservation_id=reservation_id).status_code == 201
    assert httpx.post(confirms(reservation_id), timeout=10, headers=confirming()).status_code == 200
    with MongoClient(mongo_url) as client:  # what the late call's hold writes
        client[shop_settings["MONGODB_DATABASE"]].products.update_one(
            {"sku": lamp["sku"]}, {"$inc": {"stock_quantity": -2}, "$push": {"holds": reservation_id},
                                   "$set": {f"hold_tokens.{reservation_id}": "a-late-call"}})
    assert stock_of(gateway, lamp) == 1

    assert sweep(shop) == 200

    assert stock_of(gateway, lamp) == 3  # two sold, the late two back
    with MongoClient(mongo_url) as client:
        stored = client[shop_settings["MONGODB_DATABASE"]].products.find_one({"sku": lamp["sku"]})
    assert stored["holds"] == [] and reservation_id not in stored.get("hold_tokens", {})


def _stale_hold(gateway, mongo_url, shop_settings, reservations, releases) -> dict:
    """A product holding 2 units for a reservation already released (a reserve call outlived the release)."""
    lamp, reservation_id = product(gateway, 5), str(uuid.uuid4())
    reserve(reservations, (lamp, 2), reservation_id=reservation_id)
    httpx.delete(f"{releases}/{reservation_id}", headers=releasing())
    with MongoClient(mongo_url) as client:
        client[shop_settings["MONGODB_DATABASE"]].products.update_one(
            {"sku": lamp["sku"]}, {"$inc": {"stock_quantity": -2}, "$push": {"holds": reservation_id}})
    assert stock_of(gateway, lamp) == 3
    return lamp


def test_the_sweep_reaches_a_stale_hold_behind_more_products_holding_stock_than_one_page(
        gateway, mongo_url, shop_settings, reservations, releases, in_process_store):
    from functions.catalog import stock

    for _ in range(3):  # live reservations: their products hold stock and come first in id order
        assert reserve(reservations, (product(gateway, 5), 1)).status_code == 201
    lamp = _stale_hold(gateway, mongo_url, shop_settings, reservations, releases)
    in_process_store()

    asyncio.run(stock.sweep(limit=2))

    assert stock_of(gateway, lamp) == 5
    with MongoClient(mongo_url) as client:  # an empty `holds` is not "holding stock"
        products = client[shop_settings["MONGODB_DATABASE"]].products
        assert products.find_one({"sku": lamp["sku"]})["holds"] == []
        assert products.count_documents({"sku": lamp["sku"], **stock.HELD}) == 0


def test_a_sweep_out_of_time_goes_on_next_tick_where_it_stopped(
        gateway, mongo_url, shop_settings, reservations, releases, in_process_store, monkeypatch):
    from functions.catalog import stock

    for _ in range(3):
        assert reserve(reservations, (product(gateway, 5), 1)).status_code == 201
    lamp = _stale_hold(gateway, mongo_url, shop_settings, reservations, releases)
    with MongoClient(mongo_url) as client:
        held = client[shop_settings["MONGODB_DATABASE"]].products.count_documents(stock.HELD)
    in_process_store()
    monkeypatch.setattr(stock, "SWEEP_SECONDS", -1)  # every tick reads one page, then its time is up

    ticks, places = 0, []
    while stock_of(gateway, lamp) != 5 and ticks <= held:
        asyncio.run(stock.sweep(limit=2))
        ticks += 1
        with MongoClient(mongo_url) as client:  # kept in the store: the next tick may be another instance
            places.append(client[shop_settings["MONGODB_DATABASE"]].reservation_sweep.find_one()["after"])

    assert stock_of(gateway, lamp) == 5 and ticks <= held // 2 + 1
    assert places[0] is not None and places == sorted(places[:-1]) + places[-1:]  # forward, page by page


def test_a_reservation_confirmed_while_the_sweep_releases_expired_ones_is_kept_and_the_tick_goes_on(
        gateway, shop, confirms):
    kept, released = product(gateway, 5), product(gateway, 5)
    short = {**shop.settings, "RESERVATION_TTL_SECONDS": "0.5"}
    slow_sweep = {**shop.settings, "SHOP_TEST_FAULTS": "catalog.sweep.before-release=sleep:2"}
    with function_alone("catalog-reserve-stock", short) as reserving, \
            function_alone("catalog-expire-reservations", slow_sweep) as expire:
        url = reserving.url + "/internal/stock/reservations"
        kept_id, released_id = str(uuid.uuid4()), str(uuid.uuid4())
        assert reserve(url, (kept, 2), reservation_id=kept_id).status_code == 201
        assert reserve(url, (released, 2), reservation_id=released_id).status_code == 201
        time.sleep(0.6)  # both expired, neither released yet
        with ThreadPoolExecutor(1) as background:
            ticked = background.submit(tick, "catalog-expire-reservations", expire.url)
            time.sleep(1)  # the sweep has read both and waits before releasing
            assert httpx.post(confirms(kept_id), headers=confirming(), timeout=10).status_code == 200

            assert ticked.result() == 200

    assert stock_of(gateway, kept) == 3 and stock_of(gateway, released) == 5
