"""The simulated card processor, with its own ledger: one decision per order id, like a real processor's
idempotency key. Charging an order again answers the first decision; a `voided` order can never be charged.

It lives in the orders database for convenience, but it stands for a third party: every call is its own
statement (autocommit), never part of one of our transactions.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from functions.orders.payment import Charge, decide
from shared.postgres import Connection

_DECISION = "outcome, reason, amount, currency"


def charge(db: Connection, order_id: uuid.UUID, card_number: str, amount: Decimal, currency: str) -> Charge:
    decision = decide(card_number)
    rows = db.run("INSERT INTO processor_charges (order_id, amount, currency, outcome, reason) "
                  "VALUES (:id, :amount, :currency, :outcome, :reason) ON CONFLICT (order_id) DO NOTHING "
                  f"RETURNING {_DECISION}", id=order_id, amount=amount,
                  currency=currency, outcome=decision.outcome, reason=decision.reason)
    return Charge(*rows[0]) if rows else _decided(db, order_id)


def void(db: Connection, order_id: uuid.UUID) -> Charge:
    """Refuse any later charge of this order, unless one was already decided: that decision is answered."""
    rows = db.run("INSERT INTO processor_charges (order_id, outcome) VALUES (:id, 'voided') "
                  f"ON CONFLICT (order_id) DO NOTHING RETURNING {_DECISION}", id=order_id)
    return Charge(*rows[0]) if rows else _decided(db, order_id)


def refund(db: Connection, order_id: uuid.UUID) -> None:
    """Give an approved charge back (idempotent)."""
    db.run("UPDATE processor_charges SET refunded_at = COALESCE(refunded_at, now()) "
           "WHERE order_id = :id AND outcome = 'approved'", id=order_id)


def _decided(db: Connection, order_id: uuid.UUID) -> Charge:
    return Charge(*db.run(f"SELECT {_DECISION} FROM processor_charges WHERE order_id = :id", id=order_id)[0])
