"""The checkout's decisions (functions/orders/service.py) with in-memory fakes of its ports."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from functions.orders import service
from functions.orders.models import CreateOrder
from functions.orders.payment import Charge
from shared.errors import ServiceUnavailable
from shared.settings import settings
from tests.unit.checkout_fakes import LEASE_GRACE, fake_ports

CARD, DECLINED, PROCESSOR_ERROR = "4242424242424242", "4000000000009995", "4000000000000119"


@pytest.fixture(autouse=True)
def checkout_settings(monkeypatch):
    monkeypatch.setenv("CARD_FINGERPRINT_KEY", "unit-test-key-" + "x" * 32)
    monkeypatch.setenv("IDEMPOTENCY_WAIT_SECONDS", "0")
    monkeypatch.setenv("ORDER_LEASE_SECONDS", "10")
    settings.cache_clear()
    yield
    settings.cache_clear()


def command(items=(("MUG", 2),), card=CARD, user="ann") -> CreateOrder:
    body = {"user_id": user, "payment": {"card_number": card, "expiry": "12/39", "cvv": "123"},
            "shipping_address": {"street": "1 Main St", "city": "Lyon", "postal_code": "69001", "country": "FR"}}
    if items is not None:
        body["items"] = [{"product_sku": sku, "quantity": quantity} for sku, quantity in items]
    return CreateOrder.model_validate(body)


def place(ports, cmd=None, key="k1"):
    cmd = cmd or command()
    return asyncio.run(service.place_order(cmd, key, cmd.fingerprint(), "Bearer t", ports))


STOCK = {"MUG": (5, "10.00", "EUR"), "CUP": (5, "3.00", "EUR"), "HAT": (5, "9.00", "USD")}


def test_an_order_is_reserved_charged_confirmed_and_announced():
    ports, ledger, catalog, _, processor, outbox = fake_ports(STOCK)

    outcome = place(ports)

    assert isinstance(outcome, service.Placed) and outcome.order["status"] == "confirmed"
    order_id = uuid.UUID(outcome.order["id"])
    assert catalog.reservations[order_id]["state"] == "confirmed" and catalog.stock["MUG"][0] == 3
    assert processor.decisions[order_id].outcome == "approved"
    assert [row.destination for row in outbox.delivered] == ["sink"]  # explicit items: the cart is left alone


def test_a_repeated_key_answers_the_same_order_and_does_nothing_again():
    ports, ledger, catalog, *_ = fake_ports(STOCK)

    first, again = place(ports), place(ports)

    assert again.order["id"] == first.order["id"]
    assert [call for call, _ in catalog.calls] == ["reserve", "confirm"]


def test_the_same_key_for_another_request_is_refused():
    ports, *_ = fake_ports(STOCK)
    place(ports)

    outcome = place(ports, command(items=(("MUG", 1),)))

    assert isinstance(outcome, service.Refused) and outcome.problem.status == 422


def test_a_key_held_by_a_live_request_answers_in_progress():
    ports, ledger, catalog, *_ = fake_ports(STOCK)
    catalog.down = True
    with pytest.raises(ServiceUnavailable):
        place(ports)
    ledger.keys[("ann", "k1")].update(locked_until=ledger.now + 5, released=False)  # as if it were still running

    outcome = place(ports)

    assert isinstance(outcome, service.InProgress) and outcome.retry_after >= 1


def test_a_failure_that_decided_nothing_frees_the_key_for_an_immediate_retry_of_the_same_order():
    ports, ledger, catalog, *_ = fake_ports(STOCK)
    catalog.down = True
    with pytest.raises(ServiceUnavailable):
        place(ports)
    first_order = ledger.keys[("ann", "k1")]["order_id"]
    catalog.down = False

    outcome = place(ports)

    assert outcome.order["id"] == str(first_order)  # resumed: the same order id, so the same reservation
    assert len(catalog.reservations) == 1


def test_a_sweep_before_the_retry_of_a_failure_leaves_the_order_to_that_retry():
    ports, ledger, catalog, *_ = fake_ports(STOCK)
    catalog.down = True
    with pytest.raises(ServiceUnavailable):
        place(ports)
    catalog.down = False

    asyncio.run(service.resolve_unfinished(ports))
    outcome = place(ports)

    assert outcome.order["id"] == str(ledger.keys[("ann", "k1")]["order_id"])
    assert outcome.order["status"] != "cancelled"


def test_a_catalog_refusal_is_final_and_leaves_no_order():
    ports, ledger, catalog, *_ = fake_ports({"MUG": (1, "10.00", "EUR")})

    first, again = place(ports), place(ports)

    assert first.problem.status == again.problem.status == 409
    assert ledger.orders == {} and catalog.stock["MUG"][0] == 1


@pytest.mark.parametrize("card, status, order_status", [(DECLINED, 402, "payment_failed"),
                                                        (PROCESSOR_ERROR, 409, "cancelled")])
def test_a_refused_charge_releases_the_stock(card, status, order_status):
    ports, ledger, catalog, *_ = fake_ports(STOCK)

    outcome = place(ports, command(card=card))

    assert outcome.problem.status == status
    assert [order["status"] for order in ledger.orders.values()] == [order_status]
    assert catalog.stock["MUG"][0] == 5


def test_lines_in_two_currencies_are_refused_and_released_without_a_charge():
    ports, ledger, catalog, _, processor, _ = fake_ports(STOCK)

    outcome = place(ports, command(items=(("MUG", 1), ("HAT", 1))))

    assert outcome.problem.status == 422 and processor.decisions == {}
    assert catalog.stock["MUG"][0] == 5 and catalog.stock["HAT"][0] == 5


def test_a_cart_order_takes_out_exactly_what_it_ordered_and_an_empty_cart_is_refused():
    ports, ledger, _, cart, _, outbox = fake_ports(STOCK)
    assert place(ports, command(items=None), key="empty").problem.status == 422
    cart.lines_by_user["ann"] = [("MUG", 2), ("CUP", 1)]

    outcome = place(ports, command(items=None), key="cart")

    assert isinstance(outcome, service.Placed)
    removal = [row for row in outbox.delivered if row.destination == "cart"]
    assert [sorted(row.data["lines"]) for row in removal] == [[("CUP", 1), ("MUG", 2)]]


def test_a_cart_order_resumed_later_buys_what_the_first_attempt_read():
    ports, ledger, catalog, cart, *_ = fake_ports(STOCK)
    cart.lines_by_user["ann"] = [("MUG", 1)]
    catalog.down = True
    with pytest.raises(ServiceUnavailable):
        place(ports, command(items=None))
    cart.lines_by_user["ann"] = [("MUG", 1), ("CUP", 4)]  # the shopper kept adding meanwhile
    catalog.down = False

    outcome = place(ports, command(items=None))

    assert isinstance(outcome, service.Placed) and catalog.stock["CUP"][0] == 5


def test_the_sweep_gives_up_an_uncharged_order_and_voids_a_late_charge():
    ports, ledger, catalog, _, processor, _ = fake_ports(STOCK)
    catalog.down = True
    with pytest.raises(ServiceUnavailable):
        place(ports)
    order_id = ledger.keys[("ann", "k1")]["order_id"]
    ledger.now += LEASE_GRACE  # the client did not retry while the sweep left the order to it

    assert asyncio.run(service.resolve_unfinished(ports)) == {"completed": 0, "given_up": 1}
    assert processor.decisions[order_id].outcome == "voided"
    assert ledger.orders[order_id]["status"] == "cancelled"
    assert place(ports).problem.slug == "order-abandoned"


def test_the_sweep_finishes_an_order_whose_charge_was_approved():
    ports, ledger, catalog, _, processor, _ = fake_ports(STOCK)
    order = place(ports)  # then pretend its instance died right after the charge:
    order_id = uuid.UUID(order.order["id"])
    ledger.orders[order_id]["status"] = "pending"
    ledger.keys[("ann", "k1")].update(status=None, body=None, locked_until=ledger.now)
    catalog.reservations[order_id]["state"] = "reserved"

    assert asyncio.run(service.resolve_unfinished(ports)) == {"completed": 1, "given_up": 0}
    assert ledger.orders[order_id]["status"] == "confirmed"


def test_an_expired_reservation_after_an_approved_charge_is_refunded():
    ports, ledger, catalog, _, processor, _ = fake_ports(STOCK)
    original_confirm = catalog.confirm

    async def expired_first(order_id):
        catalog.release(order_id)
        return await original_confirm(order_id)

    catalog.confirm = expired_first

    outcome = place(ports)

    order_id = ledger.keys[("ann", "k1")]["order_id"]
    assert outcome.problem.slug == "order-abandoned" and outcome.problem.extensions["refunded"] is True
    assert order_id in processor.refunded and ledger.orders[order_id]["refunded"]
    assert catalog.stock["MUG"][0] == 5


def test_a_request_whose_charge_was_voided_by_the_sweep_answers_as_the_sweep_did():
    ports, ledger, catalog, _, processor, _ = fake_ports(STOCK)
    original_reserve = catalog.reserve

    async def sweep_meanwhile(order_id, lines):
        reservation = await original_reserve(order_id, lines)
        ledger.keys[("ann", "k1")]["locked_until"] = ledger.now  # the lease ran out while the request was slow
        await service.resolve_unfinished(ports)
        return reservation

    catalog.reserve = sweep_meanwhile

    outcome = place(ports)

    order_id = ledger.keys[("ann", "k1")]["order_id"]
    assert outcome.problem.slug == "order-abandoned"
    assert processor.decisions[order_id] == Charge("voided")
    assert catalog.stock["MUG"][0] == 5


def test_a_stale_request_that_finds_the_cart_empty_does_not_undo_an_order_a_retry_paid():
    ports, ledger, catalog, cart, processor, _ = fake_ports(STOCK)
    cart.lines_by_user["ann"] = [("MUG", 1)]
    original_lines = cart.lines

    async def slow_then_empty(user_id, authorization):  # request A stalls here past its lease ...
        ledger.now += 60
        cart.lines = original_lines
        again = command(items=None)
        retry = await service.place_order(again, "k1", again.fingerprint(), "Bearer t", ports)  # ... retry B pays
        assert isinstance(retry, service.Placed)
        cart.lines_by_user["ann"] = []  # and took the lines out of the cart
        return []

    cart.lines = slow_then_empty

    outcome = place(ports, command(items=None))

    assert isinstance(outcome, service.Placed)  # A answers B's order, it does not refuse or delete it
    order_id = ledger.keys[("ann", "k1")]["order_id"]
    assert ledger.orders[order_id]["status"] == "confirmed" and ledger.keys[("ann", "k1")]["status"] == 201


def test_a_charge_decided_before_its_request_died_is_answered_as_decided_by_the_sweep():
    ports, ledger, catalog, _, processor, _ = fake_ports(STOCK)
    original_charge = processor.charge

    async def charge_then_die(*args):
        await original_charge(*args)
        raise ServiceUnavailable("the instance died")

    processor.charge = charge_then_die
    with pytest.raises(ServiceUnavailable):
        place(ports, command(card=DECLINED))
    ledger.now += LEASE_GRACE

    assert asyncio.run(service.resolve_unfinished(ports)) == {"completed": 0, "given_up": 1}
    assert place(ports, command(card=DECLINED)).problem.status == 402
    assert catalog.stock["MUG"][0] == 5
