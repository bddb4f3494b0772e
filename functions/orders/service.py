"""Placing an order: idempotency, stock reservation, payment, the outbox event, and compensation.

pending ──pay──▶ paid ──event published──▶ confirmed
   ├──declined──▶ payment_failed   (stock released)
   └──processor error / abandoned──▶ cancelled   (stock released)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid

from prometheus_client import Counter

from functions.orders import cart_client, outbox, payment, rules, store
from functions.orders.models import CreateOrder, OrderPublic
from shared import catalog_client
from shared.errors import BadGateway, Conflict, PaymentRequired, Problem, Unprocessable, as_problem
from shared.event_types import ORDER_CREATED
from shared.logs import logger
from shared.postgres import Connection, in_transaction
from shared.settings import AuthSettings, settings

ORDERS = Counter("shop_orders", "Order attempts, by outcome", ["outcome"])
PAYMENTS = Counter("shop_payments", "Card charges, by outcome", ["outcome"])
REPLAY_WAIT_SECONDS = 10
_log = logger("orders")


async def create_order(cmd: CreateOrder, *, idempotency_key: str, authorization: str) -> tuple[int, dict]:
    """The (status, body) of this request — the first result again when the key was used before."""
    fingerprint = _keyed_hash(cmd.fingerprint())
    order_id = uuid.uuid4()
    earlier = await in_transaction(lambda db: store.claim_key(db, cmd.user_id, idempotency_key, fingerprint, order_id))
    if earlier is not None:
        return await _replay(earlier, cmd.user_id, idempotency_key, fingerprint)
    try:
        return await _place(order_id, cmd, idempotency_key, authorization)
    except _Decided as decided:
        raise decided.refusal from None
    except Exception as error:
        refusal = as_problem(error)
        ORDERS.labels(refusal.slug if refusal else "error").inc()
        if refusal is None or refusal.status >= 500:
            # Nothing was decided (a store or peer was down, or a bug): free the key so a retry can proceed.
            # A pending order left behind is cancelled, and its stock released, by the relay's sweep.
            await _quietly(in_transaction(lambda db: store.forget_claim(db, cmd.user_id, idempotency_key)))
        else:
            await in_transaction(lambda db: store.save_response(db, cmd.user_id, idempotency_key, refusal.status,
                                                                refusal.body()))
        raise


async def _place(order_id: uuid.UUID, cmd: CreateOrder, key: str, authorization: str) -> tuple[int, dict]:
    wanted = [(item.product_sku, item.quantity) for item in cmd.items] if cmd.items else \
        await cart_client.lines(cmd.user_id, authorization)
    if not wanted:
        raise Unprocessable("The cart is empty: add items or send them in the order")
    reservation = await catalog_client.reserve(str(order_id), wanted)
    try:
        currency, total = rules.order_total(reservation.lines)
        await in_transaction(lambda db: store.insert_order(
            db, order_id, cmd.user_id, reservation.lines, currency, total,
            cmd.shipping_address.model_dump(mode="json"), cmd.contact.model_dump(mode="json", exclude_none=True),
            cmd.payment.last4))
    except BaseException:
        await _quietly(catalog_client.release(str(order_id)))
        raise

    charge = payment.charge(cmd.payment.card_number.get_secret_value(), total, currency)
    PAYMENTS.labels(charge.outcome).inc()
    if charge.outcome != "approved":
        await _fail(order_id, cmd, key, charge, total, currency)

    order, event = await in_transaction(lambda db: _mark_paid(db, order_id, cmd, key, total, currency))
    if await outbox.deliver(event):
        order = await in_transaction(lambda db: _confirmed_response(db, order_id, cmd.user_id, key))
    ORDERS.labels("created").inc()
    await cart_client.empty(cmd.user_id, authorization)
    return 201, order


def _mark_paid(db: Connection, order_id, cmd: CreateOrder, key: str, total, currency) -> tuple[dict, outbox.OutboxRow]:
    rules.check_transition("pending", "paid")
    store.set_status(db, order_id, "pending", "paid")
    store.record_payment(db, order_id, total, currency, cmd.payment.last4, "approved", None)
    order = OrderPublic.from_row(store.get_order(db, order_id))
    event = outbox.add(db, "sink", ORDER_CREATED, "/orders", str(order_id), event_data(order))
    store.save_response(db, cmd.user_id, key, 201, order)
    return order, event


def _confirmed_response(db: Connection, order_id, user_id: str, key: str) -> dict:
    order = OrderPublic.from_row(store.get_order(db, order_id))
    store.save_response(db, user_id, key, 201, order)
    return order


async def _fail(order_id, cmd: CreateOrder, key: str, charge: payment.Charge, total, currency) -> None:
    """Record a refused charge, queue the stock's release with it, release now, and answer the refusal."""
    if charge.outcome == "declined":
        status = "payment_failed"
        refusal: Problem = PaymentRequired(f"The card was declined: {charge.reason}",
                                           extensions={"order_id": str(order_id), "reason": charge.reason})
    else:
        status = "cancelled"
        refusal = BadGateway("The payment processor failed; nothing was charged and the stock was released",
                             extensions={"order_id": str(order_id), "reason": charge.reason})

    def record(db: Connection) -> outbox.OutboxRow:
        rules.check_transition("pending", status)
        store.set_status(db, order_id, "pending", status, charge.reason)
        store.record_payment(db, order_id, total, currency, cmd.payment.last4, charge.outcome, charge.reason)
        store.save_response(db, cmd.user_id, key, refusal.status, refusal.body())
        return outbox.add(db, "release-stock", "release-stock", "/orders", str(order_id), {"order_id": str(order_id)})

    await outbox.deliver(await in_transaction(record))
    ORDERS.labels(status).inc()
    raise _Decided(refusal)


class _Decided(Exception):
    """A refusal already recorded with its order; create_order must not record it again."""

    def __init__(self, refusal: Problem):
        self.refusal = refusal


async def _replay(earlier: store.Claim, user_id: str, key: str, fingerprint: str) -> tuple[int, dict]:
    if not hmac.compare_digest(earlier.request_hash, fingerprint):
        raise Unprocessable("This Idempotency-Key was used for a different request",
                            errors=[{"field": "header.Idempotency-Key", "type": "idempotency_key_reused",
                                     "message": "use a new key for a new request"}])
    claim: store.Claim | None = earlier
    for _ in range(int(REPLAY_WAIT_SECONDS / 0.05)):
        if claim is None:
            raise Conflict("The earlier request with this Idempotency-Key failed; send it again")
        if claim.response_status is not None:
            return claim.response_status, claim.response_body
        await asyncio.sleep(0.05)
        claim = await in_transaction(lambda db: store.find_claim(db, user_id, key))
    raise Conflict("A request with this Idempotency-Key is still being processed", headers={"Retry-After": "1"})


def event_data(order: dict) -> dict:
    """The order-created event's data: what a confirmation message needs, including how to reach the user."""
    return {key: order[key] for key in ("id", "user_id", "status", "items", "total_price", "currency", "contact",
                                        "created_at")} | {"order_id": order["id"]}


def _keyed_hash(text: str) -> str:
    # Keyed, so the stored fingerprint of a card number cannot be brute-forced without the secret.
    secret = settings(AuthSettings).shop_jwt_secret.get_secret_value().encode()
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


async def _quietly(work) -> None:
    try:
        await work
    except Exception as error:  # noqa: BLE001 - compensation is retried by the relay's sweep
        _log.warning("best-effort step failed", extra={"error": repr(error)})
