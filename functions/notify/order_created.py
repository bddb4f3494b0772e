"""notify-order-created — confirm each order to its user, once per CloudEvent (Trigger: type order.created)."""

import functions_framework.aio

from functions.notify import service
from shared.http import event_endpoint


@functions_framework.aio.cloud_event
@event_endpoint("notify-order-created")
async def order_created(event):
    await service.on_order_created(event)
