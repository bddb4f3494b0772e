"""GET /orders/{user_id} — a user's order history, newest first, paged like the catalog."""

import functions_framework.aio

from functions.orders import store
from functions.orders.models import HistoryQuery, OrderPage, OrderPublic
from shared import ids
from shared.auth import require_owner
from shared.fields import STORED
from shared.http import endpoint, json_response, parse_query
from shared.postgres import in_transaction


@functions_framework.aio.http
@endpoint("orders-list-orders")
async def list_orders(request, user_id):
    await require_owner(request.headers, ids.user_id(user_id), "orders", admin_may=True)
    query = parse_query(HistoryQuery, request)
    rows, total = await in_transaction(lambda db: store.list_orders(db, user_id, query.limit, query.offset, query.status))
    page = OrderPage.model_validate({"items": [OrderPublic.from_row(row) for row in rows], "total": total,
                                     "limit": query.limit, "offset": query.offset}, context=STORED)
    return json_response(page)
