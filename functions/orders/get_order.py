"""GET /orders/details/{order_id} — one order with its lines; 404 unknown, 403 for another customer's order."""

import functions_framework.aio

from functions.orders import store
from functions.orders.models import OrderPublic
from shared import ids
from shared.auth import require_user
from shared.errors import Forbidden, NotFound
from shared.http import endpoint, json_response
from shared.postgres import in_transaction


@functions_framework.aio.http
@endpoint("orders-get-order")
async def get_order(request, order_id):
    user = require_user(request.headers)
    key = ids.uuid_or_not_found(order_id, "order")
    row = await in_transaction(lambda db: store.get_order(db, key))
    if row is None:
        raise NotFound(f"No order '{order_id}'")
    if not (user.is_admin or row["user_id"] == user.id):
        raise Forbidden("You may only read your own orders")
    return json_response(OrderPublic.from_row(row))
