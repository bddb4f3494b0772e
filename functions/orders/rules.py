"""Order rules with no I/O: the status machine and totals."""

from __future__ import annotations

from decimal import Decimal

from shared.catalog_contract import ReservedLine

# The same machine is enforced by the schema (order_status_transitions + trigger).
TRANSITIONS = {
    "pending": {"paid", "payment_failed", "cancelled"},
    "paid": {"confirmed", "cancelled"},
    "confirmed": set(),
    "payment_failed": set(),
    "cancelled": set(),
}


class IllegalTransition(ValueError):
    pass


def check_transition(current: str, new: str) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"an order cannot go from {current} to {new}")


MAX_ORDER_TOTAL = Decimal("999999999999.99")  # what the ledger keeps exactly: numeric(14, 2)


def order_total(lines: list[ReservedLine]) -> tuple[str, Decimal] | None:
    """The order's currency and total; None when the lines are priced in several (one order, one currency)."""
    currencies = {line.price.currency for line in lines}
    if len(currencies) != 1:
        return None
    return currencies.pop(), sum((line.price.amount * line.quantity for line in lines), Decimal("0"))
