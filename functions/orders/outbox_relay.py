"""orders-outbox-relay — on every PingSource tick: resolve orders whose request died unanswered (finish them when
their charge was approved, else give them up and release their stock), deliver what the outbox still holds (with
backoff; dead after the maximum attempts), and report the backlog."""

import functions_framework.aio
from prometheus_client import Gauge

from functions.orders import outbox, service
from functions.orders.adapters import real_ports
from shared.http import event_endpoint
from shared.postgres import in_connection, in_transaction

BATCH = 100
PENDING = Gauge("shop_outbox_pending", "Outbox rows not delivered yet (dead ones excluded)")
OLDEST = Gauge("shop_outbox_oldest_pending_age_seconds", "Age of the oldest undelivered outbox row")
DEAD = Gauge("shop_outbox_dead", "Outbox rows given up after the maximum attempts, waiting for an admin")


@functions_framework.aio.cloud_event
@event_endpoint("orders-outbox-relay")
async def outbox_relay(event):
    await service.resolve_unfinished(real_ports())
    due = await in_transaction(lambda db: outbox.claim_due(db, BATCH))
    await outbox.deliver_while_leased(due)
    pending, oldest, dead = await in_connection(outbox.backlog)
    PENDING.set(pending)
    OLDEST.set(oldest)
    DEAD.set(dead)
