"""The real ports of the checkout: PostgreSQL (orders ledger, the simulated processor) and the catalog and cart
functions over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from functions.orders import outbox, processor, store
from functions.orders.models import CartRead, CreateOrder, OrderPublic
from functions.orders.outbox import OutboxRow
from functions.orders.payment import Charge
from functions.orders.ports import Attempt, Lines, Paid, Ports, Priced
from functions.orders.store import Claim, Finished, Unfinished
from shared import catalog_client, peers
from shared.catalog_contract import Reservation
from shared.errors import Conflict, Problem, ServiceUnavailable
from shared.postgres import Connection, in_connection, in_transaction
from shared.settings import CheckoutSettings, settings


class PostgresLedger:
    async def claim(self, cmd: CreateOrder, key: str, fingerprint: str, order_id: uuid.UUID, lease: float) -> Claim:
        requested = None if cmd.items is None else [(item.product_sku, item.quantity) for item in cmd.items]
        return await in_connection(lambda db: store.claim(
            db, cmd.user_id, key, fingerprint, order_id, lease, requested,
            cmd.shipping_address.model_dump(mode="json"), cmd.contact.model_dump(mode="json", exclude_none=True),
            cmd.payment.last4))

    async def set_requested(self, order_id: uuid.UUID, lines: Lines) -> Lines:
        return await in_connection(lambda db: store.set_requested(db, order_id, lines))

    async def release_lease(self, attempt: Attempt) -> None:
        grace = settings(CheckoutSettings).order_lease_seconds
        await in_connection(lambda db: store.release_lease(db, attempt.user_id, attempt.key, attempt.lease_token,
                                                           grace))

    async def refuse_unreserved(self, attempt: Attempt, refusal: Problem) -> list[OutboxRow] | Finished:
        def work(db: Connection) -> list[OutboxRow] | Finished:
            if not store.delete_unreserved(db, attempt.order_id):
                return _already_answered(db, attempt)
            store.answer(db, attempt.user_id, attempt.key, refusal.status, refusal.body())
            # Nothing should be held under this id; a release makes sure (and leaves a tombstone).
            return [outbox.add_release(db, attempt.order_id)]

        return await in_transaction(work)

    async def fail(self, attempt: Attempt, status: str, reason: str, refusal: Problem, priced: Priced | None,
                   charge: Charge | None) -> list[OutboxRow] | Finished:
        def work(db: Connection) -> list[OutboxRow] | Finished:
            if not store.settle(db, attempt.order_id, status, reason, *_priced_fields(priced)):
                return _already_answered(db, attempt)
            if charge is not None:
                store.record_payment(db, attempt.order_id, charge.amount, charge.currency, attempt.card_last4,
                                     charge.outcome, charge.reason)
            store.answer(db, attempt.user_id, attempt.key, refusal.status, refusal.body())
            return [outbox.add_release(db, attempt.order_id)]

        return await in_transaction(work)

    async def pay(self, attempt: Attempt, priced: Priced, charge: Charge) -> Paid | Finished:
        cart_lines = [{"product_sku": line.sku, "quantity": line.quantity} for line in priced.lines] \
            if attempt.from_cart else None
        first_retry = settings(CheckoutSettings).outbox_first_retry_seconds

        def work(db: Connection) -> Paid | Finished:
            row = store.pay(db, attempt.user_id, attempt.key, attempt.order_id, priced.lines, priced.currency,
                            priced.total, attempt.card_last4, cart_lines, first_retry)
            if row is None:
                return _already_answered(db, attempt)
            rows = [OutboxRow(uuid.UUID(id_), destination, event_type, source, subject, data,
                              datetime.fromisoformat(created_at), attempts)
                    for id_, destination, event_type, source, subject, data, created_at, attempts in row.pop("outbox")]
            return Paid(OrderPublic.from_row(row), sorted(rows, key=lambda r: r.destination != "sink"))

        return await in_connection(work)

    async def refund(self, attempt: Attempt, charge: Charge, refusal: Problem) -> Finished | None:
        def work(db: Connection) -> Finished | None:
            if not store.settle(db, attempt.order_id, "cancelled", "reservation_expired", None, charge.currency,
                                charge.amount, refunded=True):
                return _already_answered(db, attempt)
            store.record_payment(db, attempt.order_id, charge.amount, charge.currency, attempt.card_last4,
                                 "approved", None, refunded=True)
            store.answer(db, attempt.user_id, attempt.key, refusal.status, refusal.body())
            return None

        return await in_transaction(work)

    async def abandon(self, attempt: Attempt, refusal: Problem) -> list[OutboxRow] | Finished:
        def work(db: Connection) -> list[OutboxRow] | Finished:
            if not store.settle(db, attempt.order_id, "cancelled", "abandoned"):
                return _already_answered(db, attempt)
            store.answer(db, attempt.user_id, attempt.key, refusal.status, refusal.body())
            return [outbox.add_release(db, attempt.order_id)]

        return await in_transaction(work)

    async def final_answer(self, attempt: Attempt) -> Finished | None:
        return await in_connection(lambda db: store.final_answer(db, attempt.user_id, attempt.key))

    async def order(self, order_id: uuid.UUID) -> dict:
        return OrderPublic.from_row(await in_transaction(lambda db: store.get_order(db, order_id)))

    async def take_unfinished(self, lease: float, limit: int) -> list[Unfinished]:
        return await in_connection(lambda db: store.take_unfinished(db, lease, limit))


def _priced_fields(priced: Priced | None) -> tuple:
    return (None, None, None) if priced is None else (priced.lines, priced.currency, priced.total)


def _already_answered(db: Connection, attempt: Attempt) -> Finished:
    """The order is no longer pending: someone else (a concurrent retry, the sweep) decided it and answered."""
    answer = store.final_answer(db, attempt.user_id, attempt.key)
    if answer is None:
        raise ServiceUnavailable("The order is being settled by another request; retry shortly")
    return answer


class ReservationGone(Conflict):
    slug, title = "reservation-released", "Reservation Released"


class HttpCatalog:
    async def reserve(self, order_id: uuid.UUID, lines: Lines) -> Reservation | Problem:
        try:
            reservation = await catalog_client.reserve(str(order_id), lines)
        except peers.PeerRefused as refusal:
            return refusal
        if reservation.state == "released":  # given back meanwhile: nothing is held for this order any more
            return ReservationGone(f"The reservation of order {order_id} was released")
        return reservation

    async def confirm(self, order_id: uuid.UUID) -> Reservation | None:
        try:
            return await catalog_client.confirm(str(order_id))
        except peers.PeerRefused as refusal:
            if refusal.slug == "reservation-released":
                return None
            raise ServiceUnavailable(f"The stock of order {order_id} cannot be confirmed yet: {refusal.detail}")


class HttpCart:
    async def lines(self, user_id: str, authorization: str) -> Lines:
        response = await peers.call("cart-get-cart", "GET", f"/cart/{user_id}", params={"priced": "false"},
                                    headers={"Authorization": authorization})
        return [(line.product_sku, line.quantity) for line in peers.parsed(CartRead, response, "cart-get-cart").items]


class PostgresProcessor:
    async def charge(self, order_id: uuid.UUID, card_number: str, amount: Decimal, currency: str) -> Charge:
        return await in_connection(lambda db: processor.charge(db, order_id, card_number, amount, currency))

    async def void(self, order_id: uuid.UUID) -> Charge:
        return await in_connection(lambda db: processor.void(db, order_id))

    async def refund(self, order_id: uuid.UUID) -> None:
        await in_connection(lambda db: processor.refund(db, order_id))


class OutboxDelivery:
    async def deliver(self, row: OutboxRow) -> bool:
        return await outbox.deliver(row)


@lru_cache(maxsize=1)
def real_ports() -> Ports:
    return Ports(PostgresLedger(), HttpCatalog(), HttpCart(), PostgresProcessor(), OutboxDelivery())
