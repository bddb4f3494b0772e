"""What the checkout needs from the world, as ports: the orders ledger (our database), the catalog's stock, the
cart, the card processor and the outbox. `adapters.py` has the real ones; the unit tests use in-memory fakes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from functions.orders.models import CreateOrder
from functions.orders.outbox import OutboxRow
from functions.orders.payment import Charge
from functions.orders.store import Claim, Finished, Unfinished
from shared.catalog_contract import Reservation, ReservedLine
from shared.errors import Problem

Lines = list[tuple[str, int]]


@dataclass(frozen=True)
class Attempt:
    """One order being placed: its key, its id (also the reservation id and the charge key), and its card."""

    user_id: str
    key: str
    order_id: uuid.UUID
    card_last4: str
    from_cart: bool
    lease_token: uuid.UUID | None = None  # the request's own lease (the sweep's attempts have none)


@dataclass(frozen=True)
class Priced:
    """The reserved lines with the catalog's names and prices, and what they cost."""

    lines: list[ReservedLine]
    currency: str
    total: Decimal


@dataclass(frozen=True)
class Paid:
    order: dict
    rows: list[OutboxRow]


class Ledger(Protocol):
    """The orders database; every method is one transaction (or one statement)."""

    async def claim(self, cmd: CreateOrder, key: str, fingerprint: str, order_id: uuid.UUID,
                    lease: float) -> Claim: ...

    async def set_requested(self, order_id: uuid.UUID, lines: Lines) -> Lines: ...

    async def release_lease(self, attempt: Attempt) -> None: ...

    async def refuse_unreserved(self, attempt: Attempt, refusal: Problem) -> list[OutboxRow] | Finished: ...

    async def fail(self, attempt: Attempt, status: str, reason: str, refusal: Problem, priced: Priced | None,
                   charge: Charge | None) -> list[OutboxRow] | Finished: ...

    async def pay(self, attempt: Attempt, priced: Priced, charge: Charge) -> Paid | Finished: ...

    async def refund(self, attempt: Attempt, charge: Charge, refusal: Problem) -> Finished | None: ...

    async def abandon(self, attempt: Attempt, refusal: Problem) -> list[OutboxRow] | Finished: ...

    async def final_answer(self, attempt: Attempt) -> Finished | None: ...

    async def order(self, order_id: uuid.UUID) -> dict: ...

    async def take_unfinished(self, lease: float, limit: int) -> list[Unfinished]: ...


class Catalog(Protocol):
    async def reserve(self, order_id: uuid.UUID, lines: Lines) -> Reservation | Problem:
        """The reservation, or the catalog's refusal (unknown, inactive, out of stock, released)."""

    async def confirm(self, order_id: uuid.UUID) -> Reservation | None:
        """The confirmed reservation, or None when it was released first (expired): its stock is back."""


class Cart(Protocol):
    async def lines(self, user_id: str, authorization: str) -> Lines: ...


class Processor(Protocol):
    async def charge(self, order_id: uuid.UUID, card_number: str, amount: Decimal, currency: str) -> Charge: ...

    async def void(self, order_id: uuid.UUID) -> Charge: ...

    async def refund(self, order_id: uuid.UUID) -> None: ...


class Outbox(Protocol):
    async def deliver(self, row: OutboxRow) -> bool: ...


@dataclass(frozen=True)
class Ports:
    ledger: Ledger
    catalog: Catalog
    cart: Cart
    processor: Processor
    outbox: Outbox
