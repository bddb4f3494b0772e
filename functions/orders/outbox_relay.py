"""orders-outbox-relay — on every PingSource tick, deliver what the outbox still holds (with backoff).

Also cancels orders abandoned in `pending` and releases their stock, and reports the outbox backlog.
"""

import functions_framework.aio
from prometheus_client import Gauge

from functions.orders import outbox
from shared.http import event_endpoint
from shared.postgres import in_transaction

BATCH = 100
PENDING = Gauge("shop_outbox_pending", "Outbox rows not delivered yet")
OLDEST = Gauge("shop_outbox_oldest_pending_age_seconds", "Age of the oldest undelivered outbox row")


@functions_framework.aio.cloud_event
@event_endpoint("orders-outbox-relay")
async def outbox_relay(event):
    await in_transaction(outbox.cancel_abandoned)
    due = await in_transaction(lambda db: outbox.claim_due(db, BATCH))
    for row in due:
        await outbox.deliver(row)
    pending, oldest = await in_transaction(outbox.backlog)
    PENDING.set(pending)
    OLDEST.set(oldest)
