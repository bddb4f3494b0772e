"""Placing an order so that an instance dying at any line loses no stock, no charge and no answer.

After Brandur Leach's "Implementing Stripe-like Idempotency Keys in Postgres": the intent is recorded before
any side effect, and every foreign mutation is keyed by an id decided before the first one — the order id:
1. claim the Idempotency-Key and insert the `pending` order, in one statement;
2. hold the stock: the catalog reservation's id is the order id (`functions/catalog/stock.py`);
3. charge: the processor decides once per order id (`processor.py`);
4. confirm the reservation (the stock is sold), then one transaction: order `paid`, its lines and payment, the
   outbox rows (the order-created event; the cart's removal for a cart order) and the key's answer.
Each step's own record is its recovery point: a retry with the same key resumes the order where the dead request
stopped. A request that dies unanswered holds its key only for ORDER_LEASE_SECONDS; then the relay's sweep
(`resolve_unfinished`) finishes it when the charge was approved, or voids the charge and gives the order up.

pending ──pay──▶ paid ──event published──▶ confirmed
   ├──declined──▶ payment_failed   (stock released)
   └──processor error / mixed currencies / given up / reservation expired──▶ cancelled   (stock released;
                                                                            a charge made is refunded)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from prometheus_client import Counter

from functions.orders import rules
from functions.orders.models import CreateOrder
from functions.orders.payment import Charge
from functions.orders.ports import Attempt, Ports, Priced
from functions.orders.store import Busy, Claimed, Finished, Mismatch
from shared.catalog_contract import Reservation
from shared.errors import Conflict, IdempotencyKeyReused, PaymentRequired, Problem, RecordedProblem, Unprocessable
from shared.faults import fault_point
from shared.logs import logger
from shared.settings import CheckoutSettings, settings

ORDERS = Counter("shop_orders", "Order attempts, by outcome", ["outcome"])
PAYMENTS = Counter("shop_payments", "Card charges, by outcome", ["outcome"])
_log = logger("orders")


@dataclass(frozen=True)
class Placed:
    order: dict


@dataclass(frozen=True)
class Refused:
    """A definitive answer for this key: the same refusal is answered to every retry."""

    problem: Problem


@dataclass(frozen=True)
class InProgress:
    """Another request is working on this key; retry after this many seconds."""

    retry_after: float


Outcome = Placed | Refused | InProgress


class OrderGivenUp(Conflict):
    slug, title = "order-abandoned", "Order Abandoned"


class PaymentNotCompleted(Conflict):
    slug, title = "payment-not-completed", "Payment Not Completed"


async def place_order(cmd: CreateOrder, key: str, fingerprint: str, authorization: str, ports: Ports) -> Outcome:
    """Place `cmd` under Idempotency-Key `key`; `fingerprint` (keyed, functions/orders/fingerprint.py) tells a retry
    of the same request from another request reusing the key."""
    config = settings(CheckoutSettings)
    deadline = time.monotonic() + config.idempotency_wait_seconds
    while True:
        claim = await ports.ledger.claim(cmd, key, fingerprint, uuid.uuid4(), config.order_lease_seconds)
        if not isinstance(claim, Busy) or time.monotonic() + 0.05 > deadline:
            break
        await asyncio.sleep(min(0.05 + claim.seconds_left / 10, 0.25))
    if isinstance(claim, Mismatch):
        return Refused(IdempotencyKeyReused("a different request"))
    if isinstance(claim, Busy):
        return InProgress(max(1.0, claim.seconds_left))
    if isinstance(claim, Finished):
        return await _replay(claim, ports)
    attempt = Attempt(cmd.user_id, key, claim.order_id, cmd.payment.last4, from_cart=cmd.items is None,
                      lease_token=claim.lease_token)
    try:
        outcome = await _advance(attempt, claim, cmd, authorization, ports)
    except BaseException:
        # Nothing definitive was answered (a store or peer failed, or a bug): the order stays pending and the
        # client's retry with this key resumes it at once; without a retry the sweep resolves it.
        await _quietly(ports.ledger.release_lease(attempt))
        ORDERS.labels("interrupted").inc()
        raise
    ORDERS.labels("created" if isinstance(outcome, Placed) else outcome.problem.slug).inc()
    return outcome


async def _advance(attempt: Attempt, claim: Claimed, cmd: CreateOrder, authorization: str, ports: Ports) -> Outcome:
    lines = claim.requested
    if lines is None:  # fixed by the first attempt that read a non-empty cart, whatever the cart holds later
        lines = await ports.ledger.set_requested(attempt.order_id,
                                                 await ports.cart.lines(cmd.user_id, authorization))
        if not lines:
            return await _refuse_unreserved(attempt, Unprocessable("The cart is empty: add items or send them in "
                                                                   "the order"), ports)
    await fault_point("orders.before-reserve")
    reservation = await ports.catalog.reserve(attempt.order_id, lines)
    if isinstance(reservation, Problem):
        if reservation.slug == "reservation-released":  # the sweep gave this order up meanwhile
            return await _given_up(attempt, ports)
        return await _refuse_unreserved(attempt, reservation, ports)
    await fault_point("orders.after-reserve")
    priced = _priced(reservation)
    if priced is None:
        currencies = sorted({line.price.currency for line in reservation.lines})
        refusal = Unprocessable(f"An order is paid in one currency; these products are priced in {currencies}")
        return await _fail(attempt, "cancelled", "mixed_currencies", refusal, None, None, ports)
    if priced.total > rules.MAX_ORDER_TOTAL:  # each price is within bounds; many of the dearest are not
        refusal = Unprocessable(f"An order's total may be at most {rules.MAX_ORDER_TOTAL}; this one is {priced.total}")
        return await _fail(attempt, "cancelled", "total_too_large", refusal, None, None, ports)
    charge = await ports.processor.charge(attempt.order_id, cmd.payment.card_number.get_secret_value(),
                                          priced.total, priced.currency)
    PAYMENTS.labels(charge.outcome).inc()
    await fault_point("orders.after-charge")
    if charge.outcome == "voided":
        return await _given_up(attempt, ports)
    if charge.outcome == "declined":
        return await _fail(attempt, "payment_failed", charge.reason, _declined(attempt, charge), priced, charge, ports)
    if charge.outcome == "error":
        return await _fail(attempt, "cancelled", charge.reason, _processor_failed(attempt, charge), priced, charge,
                           ports)
    return await _complete(attempt, charge, ports)


def _declined(attempt: Attempt, charge: Charge) -> Problem:
    return PaymentRequired(f"The card was declined: {charge.reason}",
                           extensions={"order_id": str(attempt.order_id), "reason": charge.reason})


def _processor_failed(attempt: Attempt, charge: Charge) -> Problem:
    # The processor's decision for this order is final, so this answer is too: a new key may try again.
    return PaymentNotCompleted("The payment processor failed; nothing was charged and the stock was released. "
                               "Send the order again with a new Idempotency-Key",
                               extensions={"order_id": str(attempt.order_id), "reason": charge.reason})


async def _complete(attempt: Attempt, charge: Charge, ports: Ports) -> Outcome:
    """The charge is approved: keep the stock and record the order paid — or refund when the stock was let go."""
    confirmed = await ports.catalog.confirm(attempt.order_id)
    if confirmed is None:  # the reservation expired before it was confirmed: its stock is back; so is the money
        await ports.processor.refund(attempt.order_id)
        refusal = OrderGivenUp("The order took too long and its stock was released; the charge was refunded. "
                               "Send the order again with a new Idempotency-Key",
                               extensions={"order_id": str(attempt.order_id), "refunded": True})
        answer = await ports.ledger.refund(attempt, charge, refusal)
        return await _replay(answer, ports) if answer is not None else Refused(refusal)
    await fault_point("orders.after-confirm")
    paid = await ports.ledger.pay(attempt, _priced(confirmed), charge)
    if isinstance(paid, Finished):
        return await _replay(paid, ports)
    await fault_point("orders.after-pay")
    order = paid.order
    for row in paid.rows:
        if await ports.outbox.deliver(row) and row.destination == "sink":
            order = order | {"status": "confirmed"}
    return Placed(order)


async def _fail(attempt: Attempt, status: str, reason: str, refusal: Problem, priced: Priced | None,
                charge: Charge | None, ports: Ports) -> Outcome:
    """Record the refusal with its order, queue the stock's release with it, and release now."""
    recorded = await ports.ledger.fail(attempt, status, reason, refusal, priced, charge)
    return await _refused(recorded, refusal, ports)


async def _refuse_unreserved(attempt: Attempt, refusal: Problem, ports: Ports) -> Outcome:
    """Nothing was held (the catalog refused, or the cart is empty): the order is dropped — unless another request
    with this key (a retry that took over a lease this one outlived) got as far as a charge."""
    charge = await ports.processor.void(attempt.order_id)
    if charge.outcome == "approved":
        return await _complete(attempt, charge, ports)
    recorded = await ports.ledger.refuse_unreserved(attempt, refusal)
    return await _refused(recorded, refusal, ports)


async def _given_up(attempt: Attempt, ports: Ports) -> Outcome:
    """The order's reservation or charge was let go while its request was away (the sweep gave the order up, or
    the reservation expired): answer as the sweep did, or settle the order now."""
    answer = await ports.ledger.final_answer(attempt)
    if answer is not None:
        return await _replay(answer, ports)
    return await _finish_or_give_up(attempt, ports)


async def _finish_or_give_up(attempt: Attempt, ports: Ports) -> Outcome:
    """Settle an order nobody is charging any more: void the charge unless one was approved (then keep the order,
    or refund it when its stock is gone); otherwise cancel it and release its stock."""
    charge = await ports.processor.void(attempt.order_id)
    if charge.outcome == "approved":
        return await _complete(attempt, charge, ports)
    if charge.outcome == "declined":  # decided before its request died: answer as that request would have
        return await _fail(attempt, "payment_failed", charge.reason, _declined(attempt, charge), None, charge, ports)
    if charge.outcome == "error":
        return await _fail(attempt, "cancelled", charge.reason, _processor_failed(attempt, charge), None, charge,
                           ports)
    return await _abandon(attempt, ports)


async def _abandon(attempt: Attempt, ports: Ports) -> Outcome:
    refusal = OrderGivenUp("The order was not completed in time and has been cancelled; nothing was charged. "
                           "Send it again with a new Idempotency-Key", extensions={"order_id": str(attempt.order_id)})
    recorded = await ports.ledger.abandon(attempt, refusal)
    return await _refused(recorded, refusal, ports)


async def _refused(recorded: list | Finished, refusal: Problem, ports: Ports) -> Outcome:
    """A refusal the ledger recorded (then its outbox rows are delivered now), or the answer someone else gave."""
    if isinstance(recorded, Finished):
        return await _replay(recorded, ports)
    for row in recorded:
        await ports.outbox.deliver(row)
    return Refused(refusal)


async def resolve_unfinished(ports: Ports, limit: int = 100) -> dict[str, int]:
    """The sweep: orders whose request died unanswered are finished when their charge was approved, else given up
    (the processor is told to refuse a charge still on its way: void). Each key is leased while it is resolved."""
    resolved = {"completed": 0, "given_up": 0}
    for unfinished in await ports.ledger.take_unfinished(settings(CheckoutSettings).order_lease_seconds, limit):
        attempt = Attempt(unfinished.user_id, unfinished.key, unfinished.order_id, unfinished.card_last4,
                          unfinished.from_cart)
        try:
            outcome = await _finish_or_give_up(attempt, ports)
            resolved["completed" if isinstance(outcome, Placed) else "given_up"] += 1
        except Exception as error:  # noqa: BLE001 - its lease expires and the next sweep tries again
            _log.warning("unfinished order not resolved yet", extra={"order_id": str(attempt.order_id),
                                                                     "error": repr(error)})
    if any(resolved.values()):
        _log.info("unfinished orders resolved", extra=resolved)
    return resolved


async def _replay(answer: Finished, ports: Ports) -> Outcome:
    if answer.status == 201:
        return Placed(await ports.ledger.order(answer.order_id))
    return Refused(RecordedProblem(answer.status, answer.body or {}))


def _priced(reservation: Reservation) -> Priced | None:
    total = rules.order_total(reservation.lines)
    return None if total is None else Priced(reservation.lines, *total)


async def _quietly(work) -> None:
    try:
        await work
    except Exception as error:  # noqa: BLE001 - the lease then simply runs out
        _log.warning("best-effort step failed", extra={"error": repr(error)})
