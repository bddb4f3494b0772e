"""DELETE /internal/stock/reservations/{reservation_id} — give reserved stock back, once (cluster-local).

An id never reserved answers 200 `released` with no lines, and stays released: a reserve call arriving later
with that id takes nothing. A confirmed (sold) reservation answers 409; an id no reservation could have (see
shared.ids.RESERVATION_ID_PATTERN) 404.
"""

import functions_framework.aio

from functions.catalog import stock
from shared import ids
from shared.http import endpoint, json_response


@functions_framework.aio.http
@endpoint("catalog-release-stock")
async def release_stock(request, reservation_id):
    return json_response(await stock.release(ids.reservation_id(reservation_id)))
