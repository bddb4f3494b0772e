"""The simulated card processor: Luhn and expiry checks, and test cards that decline or fail.

| card number      | outcome                                  |
| ---------------- | ---------------------------------------- |
| 4000000000009995 | declined: insufficient funds (402)       |
| 4000000000000002 | declined: card declined (402)            |
| 4000000000000119 | processor error (502, stock released)    |
| any other valid  | approved                                 |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

INSUFFICIENT_FUNDS = "4000000000009995"
DECLINED = "4000000000000002"
PROCESSOR_ERROR = "4000000000000119"
_DECLINES = {INSUFFICIENT_FUNDS: "insufficient_funds", DECLINED: "card_declined"}


@dataclass(frozen=True)
class Charge:
    outcome: Literal["approved", "declined", "error", "voided"]  # voided: the order was given up before a charge
    reason: str | None = None
    amount: Decimal | None = None
    currency: str | None = None


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, digit in enumerate(int(d) for d in reversed(number)):
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def expiry_in_future(expiry: str, today: date) -> bool:
    """`MM/YY`: a card is valid through the last day of its expiry month."""
    month, year = int(expiry[:2]), 2000 + int(expiry[3:])
    return (year, month) >= (today.year, today.month)


def decide(card_number: str) -> Charge:
    """The processor's decision for a card; it depends only on the card number (see the table above)."""
    if card_number == PROCESSOR_ERROR:
        return Charge("error", "processor_unavailable")
    if card_number in _DECLINES:
        return Charge("declined", _DECLINES[card_number])
    return Charge("approved")
