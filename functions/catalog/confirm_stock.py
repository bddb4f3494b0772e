"""POST /internal/stock/reservations/{reservation_id}/confirm — keep the stock for a paid order (cluster-local).

Idempotent; 409 `reservation-released` when the reservation expired or was released before (the order must then
be refunded), 404 for an id never reserved.
"""

import functions_framework.aio

from functions.catalog import stock
from shared import ids
from shared.http import endpoint, json_response


@functions_framework.aio.http
@endpoint("catalog-confirm-stock")
async def confirm_stock(request, reservation_id):
    return json_response(await stock.confirm(ids.reservation_id(reservation_id)))
