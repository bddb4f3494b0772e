"""catalog-expire-reservations — on every PingSource tick, release reservations no paid order confirmed in time,
finish releases a dead instance left half-done, and settle product holds whose reservation is no longer held."""

import functions_framework.aio

from functions.catalog import stock
from shared.http import event_endpoint


@functions_framework.aio.cloud_event
@event_endpoint("catalog-expire-reservations")
async def expire_reservations(event):
    await stock.sweep()
