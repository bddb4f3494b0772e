"""Each way an instance can die or stall during a checkout, reproduced at a named step (shared/faults.py), and
what must hold afterwards: the stock is conserved, the key gets a final answer, nothing is charged silently."""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from tests.checkout import (
    FAST,
    key_order,
    new_key,
    order_body,
    order_state,
    place,
    place_until_final,
    pointing_at,
    product,
    stock_of,
    sweep,
)
from local.processes import free_port
from shared.peers import url_variable
from tests.support import bearer, function_alone, unique


@pytest.fixture
def faulty(shop, tmp_path):
    """Start a function with faults that fire once each; the rest of the shop is the session's."""
    def start(name: str, faults: str = "", **extra: str):
        once = tmp_path / f"once-{name}"
        once.mkdir(exist_ok=True)
        settings = {**shop.settings, **FAST, "SHOP_TEST_FAULTS": faults, "SHOP_TEST_FAULTS_ONCE": str(once), **extra}
        return function_alone(name, settings, log=tmp_path / f"{name}.log")

    return start


@pytest.fixture
def relay(faulty):
    with faulty("orders-outbox-relay") as running:
        yield running.url


def test_reserve_committed_but_the_caller_timed_out_then_the_retry_takes_no_stock_twice(gateway, faulty, db):
    mug, user, key = product(gateway, stock=5), unique("late"), new_key()
    with faulty("catalog-reserve-stock", "catalog.reserve.after-commit=sleep:2") as slow_catalog, \
            faulty("orders-create-order", PEER_TIMEOUT_SECONDS="1", **pointing_at(slow_catalog)) as orders:
        first = place(orders.url, user, order_body(user, [(mug, 2)]), key)
        assert first.status_code == 503 and first.headers["retry-after"]

        again = place_until_final(orders.url, user, order_body(user, [(mug, 2)]), key)

    assert again.status_code == 201, again.text
    assert stock_of(gateway, mug) == 3
    assert db.run("SELECT count(*) FROM orders WHERE user_id = :u", u=user) == [[1]]


def test_a_sweep_between_a_503_and_the_clients_retry_leaves_the_order_to_the_retry(gateway, faulty, relay, db):
    mug, user, key = product(gateway, stock=5), unique("retrying"), new_key()
    nowhere = {url_variable("catalog-reserve-stock"): f"http://127.0.0.1:{free_port()}"}
    with faulty("orders-create-order", ORDER_LEASE_SECONDS="20", **nowhere) as orders:
        first = place(orders.url, user, order_body(user, [(mug, 2)]), key)
    assert first.status_code == 503, first.text

    sweep(relay)  # a tick lands before the client retries (its period is independent of the client's backoff)

    assert order_state(db, key_order(db, user, key))["status"] == "pending"
    again = place(str(gateway.base_url).rstrip("/"), user, order_body(user, [(mug, 2)]), key)
    assert again.status_code == 201, again.text  # resumed: the same order, not order-abandoned
    assert again.json()["id"] == key_order(db, user, key) and stock_of(gateway, mug) == 3


def test_reserve_committed_and_the_caller_never_came_back_is_released_by_the_sweep(gateway, faulty, relay, db):
    mug, user, key = product(gateway, stock=5), unique("gone"), new_key()
    with faulty("catalog-reserve-stock", "catalog.reserve.after-commit=sleep:2") as slow_catalog, \
            faulty("orders-create-order", PEER_TIMEOUT_SECONDS="1", **pointing_at(slow_catalog)) as orders:
        assert place(orders.url, user, order_body(user, [(mug, 2)]), key).status_code == 503
        _wait(lambda: stock_of(gateway, mug) == 3)  # the catalog finished the reservation after the timeout
        _wait_for_sweep(relay, lambda: order_state(db, key_order(db, user, key)).get("status") == "cancelled")

        answer = place(orders.url, user, order_body(user, [(mug, 2)]), key)

    assert _wait(lambda: stock_of(gateway, mug) == 5)
    assert answer.status_code == 409 and answer.json()["type"].endswith("/order-abandoned"), answer.text
    assert order_state(db, key_order(db, user, key))["charge"] == "voided"


STEPS = ["orders.before-reserve", "orders.after-reserve", "orders.after-charge", "orders.after-confirm",
         "orders.after-pay"]


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_between_saga_steps_then_a_retry_completes_the_one_order(gateway, faulty, relay, db, step):
    mug, user, key = product(gateway, stock=5), unique("retry"), new_key()
    with faulty("orders-create-order", f"{step}=crash") as orders:
        assert place(orders.url, user, order_body(user, [(mug, 2)]), key) is None  # the instance died

        answer = place_until_final(orders.url, user, order_body(user, [(mug, 2)]), key)
        sweep(relay)

    assert answer.status_code == 201, answer.text
    state = order_state(db, answer.json()["id"])
    assert state["status"] in ("paid", "confirmed") and state["charge"] == "approved" and not state["refunded"]
    assert stock_of(gateway, mug) == 3
    assert db.run("SELECT count(*) FROM orders WHERE user_id = :u", u=user) == [[1]]


@pytest.mark.parametrize("step, resolved", [
    ("orders.before-reserve", "cancelled"), ("orders.after-reserve", "cancelled"),
    ("orders.after-charge", "paid"), ("orders.after-confirm", "paid"), ("orders.after-pay", "paid")])
def test_a_crash_between_saga_steps_without_a_retry_is_resolved_by_the_sweep(gateway, faulty, relay, db, step,
                                                                               resolved):
    mug, user, key = product(gateway, stock=5), unique("sweep"), new_key()
    with faulty("orders-create-order", f"{step}=crash") as orders:
        assert place(orders.url, user, order_body(user, [(mug, 2)]), key) is None
        order_id = key_order(db, user, key)
        _wait_for_sweep(relay, lambda: order_state(db, order_id)["status"] in (resolved, "confirmed"))

        answer = place(orders.url, user, order_body(user, [(mug, 2)]), key)

    if resolved == "paid":  # the charge was approved: the sweep finished the order, the key answers it
        assert answer.status_code == 201 and answer.json()["id"] == order_id
        assert order_state(db, order_id)["charge"] == "approved"
        assert stock_of(gateway, mug) == 3
    else:  # nothing was charged: the order is given up, its stock back, any late charge refused
        assert answer.status_code == 409 and answer.json()["type"].endswith("/order-abandoned")
        assert order_state(db, order_id)["charge"] == "voided"
        assert _wait(lambda: stock_of(gateway, mug) == 5)


def test_a_crash_inside_a_multi_line_reservation_is_completed_by_the_retry(gateway, faulty, db):
    first, second, user, key = product(gateway, stock=4), product(gateway, stock=4), unique("multi"), new_key()
    lines = [(first, 1), (second, 3)]
    with faulty("catalog-reserve-stock", "catalog.reserve.between-lines=crash") as catalog, \
            faulty("orders-create-order", **pointing_at(catalog)) as orders:
        assert place(orders.url, user, order_body(user, lines), key).status_code in (502, 503)
        assert sorted([stock_of(gateway, first), stock_of(gateway, second)]) != [4, 4]  # one line was held

        answer = place_until_final(orders.url, user, order_body(user, lines), key)

    assert answer.status_code == 201, answer.text
    assert (stock_of(gateway, first), stock_of(gateway, second)) == (3, 1)


def test_a_crash_inside_a_multi_line_reservation_is_undone_exactly_by_the_sweep(gateway, faulty, relay, db):
    first, second, user, key = product(gateway, stock=4), product(gateway, stock=4), unique("undo"), new_key()
    with faulty("catalog-reserve-stock", "catalog.reserve.between-lines=crash") as catalog, \
            faulty("orders-create-order", **pointing_at(catalog)) as orders:
        assert place(orders.url, user, order_body(user, [(first, 1), (second, 3)]), key).status_code in (502, 503)
        _wait_for_sweep(relay, lambda: order_state(db, key_order(db, user, key))["status"] == "cancelled")

    assert _wait(lambda: (stock_of(gateway, first), stock_of(gateway, second)) == (4, 4))


def test_the_sweep_finishes_an_order_whose_payment_is_being_approved_and_the_request_agrees(gateway, faulty, relay,
                                                                                             db):
    mug, user, key = product(gateway, stock=5), unique("race"), new_key()
    with faulty("orders-create-order", "orders.after-charge=sleep:3") as orders:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(place, orders.url, user, order_body(user, [(mug, 1)]), key)
            _wait(lambda: key_order(db, user, key) is not None and
                  order_state(db, key_order(db, user, key)).get("charge") == "approved")
            _wait_for_sweep(relay, lambda: order_state(db, key_order(db, user, key))["status"] in ("paid", "confirmed"))
            answer = pending.result()

    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] in ("paid", "confirmed")
    assert stock_of(gateway, mug) == 4
    assert not order_state(db, answer.json()["id"])["refunded"]


def test_the_sweep_gives_up_an_order_before_its_charge_and_the_late_charge_is_refused(gateway, faulty, relay, db):
    mug, user, key = product(gateway, stock=5), unique("void"), new_key()
    with faulty("orders-create-order", "orders.after-reserve=sleep:3") as orders:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(place, orders.url, user, order_body(user, [(mug, 1)]), key)
            _wait(lambda: stock_of(gateway, mug) == 4)
            _wait_for_sweep(relay, lambda: order_state(db, key_order(db, user, key))["status"] == "cancelled")
            answer = pending.result()

    assert answer.status_code == 409 and answer.json()["type"].endswith("/order-abandoned"), answer.text
    state = order_state(db, key_order(db, user, key))
    assert state["charge"] == "voided" and state["status"] == "cancelled"
    assert _wait(lambda: stock_of(gateway, mug) == 5)


def test_a_reservation_that_expired_before_confirmation_is_refunded(gateway, faulty, relay, db):
    mug, user, key = product(gateway, stock=5), unique("expired"), new_key()
    with faulty("catalog-reserve-stock", RESERVATION_TTL_SECONDS="1") as catalog, \
            faulty("catalog-expire-reservations") as expire, \
            faulty("orders-create-order", "orders.after-charge=sleep:4", ORDER_LEASE_SECONDS="30",
                   **pointing_at(catalog)) as orders:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(place, orders.url, user, order_body(user, [(mug, 2)]), key)
            _wait(lambda: stock_of(gateway, mug) == 3)
            time.sleep(1.2)
            sweep(relay, expire.url)  # the catalog lets the unconfirmed reservation go
            answer = pending.result()

    assert answer.status_code == 409 and answer.json()["refunded"] is True, answer.text
    state = order_state(db, answer.json()["order_id"])
    assert state == {"status": "cancelled", "reason": "reservation_expired", "refunded": True, "charge": "approved",
                     "charge_refunded": True}
    assert stock_of(gateway, mug) == 5
    owner_view = gateway.get(f"/orders/details/{answer.json()['order_id']}", headers=bearer(user)).json()
    assert owner_view["status"] == "cancelled" and owner_view["refunded_at"] is not None


def test_a_retry_while_the_first_request_still_holds_the_key_is_told_to_retry_soon(gateway, faulty, db):
    mug, user, key = product(gateway, stock=5), unique("busy"), new_key()
    with faulty("orders-create-order", "orders.before-reserve=crash", ORDER_LEASE_SECONDS="4") as orders:
        assert place(orders.url, user, order_body(user, [(mug, 1)]), key) is None

        busy = place(orders.url, user, order_body(user, [(mug, 1)]), key)
        assert busy.status_code == 409 and int(busy.headers["retry-after"]) >= 1
        assert busy.json()["type"].endswith("/conflict")

        answer = place_until_final(orders.url, user, order_body(user, [(mug, 1)]), key)

    assert answer.status_code == 201 and stock_of(gateway, mug) == 4


def _wait(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)
    return True


def _wait_for_sweep(relay_url: str, condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        sweep(relay_url)
        if condition():
            return
        assert time.monotonic() < deadline, "the sweep did not resolve the order in time"
        time.sleep(0.3)


def test_a_reserve_call_that_outlives_its_caller_takes_nothing_after_the_retry_confirmed(gateway, faulty, db):
    first, second, user, key = product(gateway, stock=4), product(gateway, stock=4), unique("outlive"), new_key()
    lines = [(first, 1), (second, 2)]
    # The first reserve call stalls after its first line, past the caller's timeout; the retry's own reserve call
    # completes the reservation, and the order is charged and confirmed before the stalled call wakes up.
    with faulty("catalog-reserve-stock", "catalog.reserve.between-lines=sleep:3") as catalog, \
            faulty("orders-create-order", PEER_TIMEOUT_SECONDS="1", **pointing_at(catalog)) as orders:
        assert place(orders.url, user, order_body(user, lines), key).status_code == 503

        answer = place_until_final(orders.url, user, order_body(user, lines), key)
        time.sleep(3)  # the stalled call holds its next line now, too late, and must give it back

    assert answer.status_code == 201, answer.text
    assert _wait(lambda: (stock_of(gateway, first), stock_of(gateway, second)) == (3, 2))
