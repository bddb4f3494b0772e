from datetime import date
from decimal import Decimal

import pytest

from functions.orders import payment, rules
from shared.catalog_contract import ReservedLine
from shared.money import Money


@pytest.mark.parametrize("number, valid", [("4242424242424242", True), ("4000000000009995", True),
                                           ("4242424242424241", False), ("42424242", False), ("4242x24242424242", False)])
def test_luhn(number, valid):
    assert payment.luhn_valid(number) is valid


@pytest.mark.parametrize("expiry, valid", [("11/26", True), ("12/26", True), ("10/26", False), ("01/27", True)])
def test_a_card_is_valid_through_its_expiry_month(expiry, valid):
    assert payment.expiry_in_future(expiry, date(2026, 11, 25)) is valid


def test_test_cards_decide_the_charge():
    assert payment.decide(payment.INSUFFICIENT_FUNDS).reason == "insufficient_funds"
    assert payment.decide(payment.PROCESSOR_ERROR).outcome == "error"
    assert payment.decide("4242424242424242").outcome == "approved"


@pytest.mark.parametrize("current, new", [("pending", "paid"), ("paid", "confirmed"), ("pending", "payment_failed"),
                                          ("pending", "cancelled"), ("paid", "cancelled")])
def test_allowed_transitions(current, new):
    rules.check_transition(current, new)


@pytest.mark.parametrize("current, new", [("confirmed", "pending"), ("payment_failed", "paid"), ("pending", "confirmed"),
                                          ("cancelled", "paid")])
def test_illegal_transitions(current, new):
    with pytest.raises(rules.IllegalTransition):
        rules.check_transition(current, new)


def line(amount, quantity, currency="EUR"):
    return ReservedLine(sku="A", quantity=quantity, name="A", price=Money(amount=Decimal(amount), currency=currency))


def test_totals_are_exact_decimals():
    assert rules.order_total([line("0.10", 3), line("19.99", 1)]) == ("EUR", Decimal("20.29"))


def test_one_order_one_currency():
    assert rules.order_total([line("1", 1), line("1", 1, "USD")]) is None
