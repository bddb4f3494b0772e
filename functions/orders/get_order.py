"""GET /orders/details/{order_id} — one order with its lines; 404 when unknown or another customer's (one answer)."""

import functions_framework.aio

from functions.orders import store
from functions.orders.models import OrderPublic
from shared import ids
from shared.auth import require_user
from shared.errors import NotFound
from shared.http import endpoint, json_response
from shared.postgres import in_transaction


@functions_framework.aio.http
@endpoint("orders-get-order")
async def get_order(request, order_id):
    user = await require_user(request.headers)
    key = ids.uuid_or_not_found(order_id, "order")
    # The owner is part of the query: another customer's order is missed by the same one query as an unknown id.
    owner = None if user.is_admin else user.id
    row = await in_transaction(lambda db: store.get_order(db, key, owner=owner))
    if row is None:
        raise NotFound(f"No order '{order_id}'")
    return json_response(OrderPublic.from_row(row))
