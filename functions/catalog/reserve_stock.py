"""POST /internal/stock/reservations — take stock for an order, all lines or none (cluster-local).

201 when reserved now, 200 when the same reservation id was reserved before; 409 when out of stock.
"""

import functions_framework.aio

from functions.catalog import stock
from shared.catalog_contract import ReservationRequest
from shared.http import endpoint, json_response, parse_body


@functions_framework.aio.http
@endpoint("catalog-reserve-stock")
async def reserve_stock(request):
    reservation, created = await stock.reserve(await parse_body(ReservationRequest, request))
    return json_response(reservation, 201 if created else 200)
