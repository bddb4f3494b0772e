"""In-memory fakes of the checkout's ports (functions/orders/ports.py), for fast tests of its decisions.

Each fake keeps the one rule its real counterpart guarantees: the ledger settles a pending order once and answers
a key once; the catalog holds and confirms by reservation id; the processor decides once per order id.
The same behaviours are tested against the real stores in tests/functions/test_orders.py and
test_checkout_crashes.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from functions.orders.adapters import ReservationGone
from functions.orders.outbox import OutboxRow
from functions.orders.payment import Charge, decide
from functions.orders.ports import Attempt, Paid, Ports, Priced
from functions.orders.store import Busy, Claimed, Finished, Mismatch, Unfinished
from shared.catalog_contract import Reservation, ReservedLine
from shared.errors import NotFound, Problem, ServiceUnavailable
from shared.money import Money

from datetime import datetime, timezone

LEASE_GRACE = 20.0  # ORDER_LEASE_SECONDS' default: how long the sweep leaves a released key to the client's retry


@dataclass
class FakeLedger:
    now: float = 0.0
    keys: dict = field(default_factory=dict)  # (user, key) -> dict
    orders: dict = field(default_factory=dict)  # order id -> dict
    rows: list = field(default_factory=list)

    async def claim(self, cmd, key, fingerprint, order_id, lease):
        found = self.keys.get((cmd.user_id, key))
        if found is None:
            requested = None if cmd.items is None else [(i.product_sku, i.quantity) for i in cmd.items]
            self.keys[(cmd.user_id, key)] = {"order_id": order_id, "hash": fingerprint, "status": None, "body": None,
                                             "locked_until": self.now + lease}
            self.orders[order_id] = {"user_id": cmd.user_id, "status": "pending", "requested": requested,
                                     "from_cart": requested is None, "lines": [], "refunded": False,
                                     "card_last4": cmd.payment.last4, "total": None, "currency": None}
            return Claimed(order_id, requested, resumed=False, lease_token=uuid.uuid4())
        if found["hash"] != fingerprint:
            return Mismatch()
        if found["status"] is not None:
            return Finished(found["order_id"], found["status"], found["body"])
        if found["locked_until"] > self.now and not found.get("released"):
            return Busy(found["locked_until"] - self.now)
        found["locked_until"], found["released"] = self.now + lease, False
        found["token"] = uuid.uuid4()
        return Claimed(found["order_id"], self.orders[found["order_id"]]["requested"], resumed=True,
                       lease_token=found["token"])

    async def set_requested(self, order_id, lines):
        order = self.orders[order_id]
        order["requested"] = order["requested"] or lines or None
        return order["requested"] or []

    async def release_lease(self, attempt: Attempt):
        found = self.keys[(attempt.user_id, attempt.key)]
        if found.get("token", attempt.lease_token) == attempt.lease_token:
            found["locked_until"], found["released"] = self.now + LEASE_GRACE, True

    async def refuse_unreserved(self, attempt, refusal):
        if self.orders.get(attempt.order_id, {}).get("status") != "pending":
            return self._answered(attempt)
        del self.orders[attempt.order_id]
        self._answer(attempt, refusal.status, refusal.body())
        return [self._row(attempt, "release-stock", {})]

    async def fail(self, attempt, status, reason, refusal, priced, charge):
        if not self._settle(attempt, status, reason, priced):
            return self._answered(attempt)
        self._answer(attempt, refusal.status, refusal.body())
        return [self._row(attempt, "release-stock", {})]

    async def pay(self, attempt, priced: Priced, charge):
        if not self._settle(attempt, "paid", None, priced):
            return self._answered(attempt)
        rows = [self._row(attempt, "sink", {})]
        if attempt.from_cart:
            rows.append(self._row(attempt, "cart", {"lines": [(line.sku, line.quantity) for line in priced.lines]}))
        self._answer(attempt, 201, None)
        return Paid(await self.order(attempt.order_id), rows)

    async def refund(self, attempt, charge, refusal):
        if not self._settle(attempt, "cancelled", "reservation_expired", None):
            return self._answered(attempt)
        self.orders[attempt.order_id]["refunded"] = True
        self._answer(attempt, refusal.status, refusal.body())
        return None

    async def abandon(self, attempt, refusal):
        if not self._settle(attempt, "cancelled", "abandoned", None):
            return self._answered(attempt)
        self._answer(attempt, refusal.status, refusal.body())
        return [self._row(attempt, "release-stock", {})]

    async def final_answer(self, attempt):
        found = self.keys[(attempt.user_id, attempt.key)]
        return Finished(found["order_id"], found["status"], found["body"]) if found["status"] else None

    async def order(self, order_id):
        order = self.orders[order_id]
        return {"id": str(order_id), "status": order["status"], "lines": order["lines"]}

    async def take_unfinished(self, lease, limit):
        taken = []
        for (user, key), found in self.keys.items():
            if found["status"] is None and found["locked_until"] <= self.now:
                found["locked_until"], found["released"] = self.now + lease, False
                order = self.orders[found["order_id"]]
                taken.append(Unfinished(user, key, found["order_id"], order["from_cart"], order["card_last4"]))
        return taken[:limit]

    def _settle(self, attempt, status, reason, priced):
        order = self.orders[attempt.order_id]
        if order["status"] != "pending":
            return False
        order.update(status=status, reason=reason)
        if priced is not None:
            order.update(lines=[(line.sku, line.quantity) for line in priced.lines], total=priced.total,
                         currency=priced.currency)
        return True

    def _answer(self, attempt, status, body):
        found = self.keys[(attempt.user_id, attempt.key)]
        if found["status"] is None:
            found.update(status=status, body=body)

    def _answered(self, attempt):
        found = self.keys[(attempt.user_id, attempt.key)]
        assert found["status"] is not None, "a settled order always has its answer"
        return Finished(found["order_id"], found["status"], found["body"])

    def _row(self, attempt, destination, data):
        row = OutboxRow(uuid.uuid4(), destination, destination, "/orders", str(attempt.order_id), data,
                        datetime.now(timezone.utc), 0)
        self.rows.append(row)
        return row


@dataclass
class FakeCatalog:
    stock: dict = field(default_factory=dict)  # sku -> (units, price, currency)
    reservations: dict = field(default_factory=dict)  # id -> {"state", "lines"}
    down: bool = False
    calls: list = field(default_factory=list)

    async def reserve(self, order_id, lines):
        self.calls.append(("reserve", order_id))
        if self.down:
            raise ServiceUnavailable("catalog down")
        existing = self.reservations.get(order_id)
        if existing is not None and existing["state"] == "released":
            return ReservationGone(f"The reservation of order {order_id} was released")
        if existing is not None:
            return Reservation(reservation_id=str(order_id), state=existing["state"], lines=existing["lines"])
        reserved = []
        for sku, quantity in lines:
            if sku not in self.stock:
                return NotFound(f"No product with sku '{sku}'")
            units, price, currency = self.stock[sku]
            if units < quantity:
                for line in reserved:
                    self.stock[line.sku] = (self.stock[line.sku][0] + line.quantity, *self.stock[line.sku][1:])
                return _OutOfStock(f"Not enough stock of '{sku}'")
            self.stock[sku] = (units - quantity, price, currency)
            reserved.append(ReservedLine(sku=sku, quantity=quantity, name=sku,
                                         price=Money(amount=Decimal(price), currency=currency)))
        self.reservations[order_id] = {"state": "reserved", "lines": reserved}
        return Reservation(reservation_id=str(order_id), state="reserved", lines=reserved)

    async def confirm(self, order_id):
        self.calls.append(("confirm", order_id))
        reservation = self.reservations[order_id]
        if reservation["state"] == "released":
            return None
        reservation["state"] = "confirmed"
        return Reservation(reservation_id=str(order_id), state="confirmed", lines=reservation["lines"])

    def release(self, order_id):
        self.reservations.setdefault(order_id, {"state": "released", "lines": []})  # the tombstone
        reservation = self.reservations.get(order_id)
        if reservation and reservation["state"] == "reserved":
            reservation["state"] = "released"
            for line in reservation["lines"]:
                self.stock[line.sku] = (self.stock[line.sku][0] + line.quantity, *self.stock[line.sku][1:])


class _OutOfStock(Problem):
    status, slug, title = 409, "out-of-stock", "Out of Stock"


@dataclass
class FakeCart:
    lines_by_user: dict = field(default_factory=dict)

    async def lines(self, user_id, authorization):
        return list(self.lines_by_user.get(user_id, []))


@dataclass
class FakeProcessor:
    decisions: dict = field(default_factory=dict)  # order id -> Charge
    refunded: set = field(default_factory=set)

    async def charge(self, order_id, card_number, amount, currency):
        decision = decide(card_number)
        return self.decisions.setdefault(order_id, Charge(decision.outcome, decision.reason, amount, currency))

    async def void(self, order_id):
        return self.decisions.setdefault(order_id, Charge("voided"))

    async def refund(self, order_id):
        self.refunded.add(order_id)


@dataclass
class FakeOutbox:
    catalog: FakeCatalog
    ledger: FakeLedger
    sink_up: bool = True
    delivered: list = field(default_factory=list)

    async def deliver(self, row: OutboxRow) -> bool:
        if row.destination == "sink" and not self.sink_up:
            return False
        if row.destination == "release-stock":
            self.catalog.release(uuid.UUID(row.subject))
        if row.destination == "sink":
            self.ledger.orders[uuid.UUID(row.subject)]["status"] = "confirmed"
        self.delivered.append(row)
        return True


def fake_ports(stock: dict | None = None) -> tuple[Ports, FakeLedger, FakeCatalog, FakeCart, FakeProcessor, FakeOutbox]:
    ledger, catalog, cart, processor = FakeLedger(), FakeCatalog(stock=dict(stock or {})), FakeCart(), FakeProcessor()
    outbox = FakeOutbox(catalog, ledger)
    return Ports(ledger, catalog, cart, processor, outbox), ledger, catalog, cart, processor, outbox
