"""GET /notifications?order_id=|recipient=|status= (admin) — ledger entries with status and attempts."""

import functions_framework.aio

from functions.notify import store
from functions.notify.models import NotificationPage, NotificationQuery
from shared.auth import require_admin
from shared.http import endpoint, json_response, parse_query
from shared.postgres import in_transaction


@functions_framework.aio.http
@endpoint("notify-list-notifications")
async def list_notifications(request):
    await require_admin(request.headers)
    query = parse_query(NotificationQuery, request)
    rows, total = await in_transaction(lambda db: store.search(db, query.order_id, query.recipient, query.status,
                                                               query.limit, query.offset))
    items = [row | {"id": str(row["id"]), "order_id": str(row["order_id"]) if row["order_id"] else None} for row in rows]
    page = NotificationPage.model_validate({"items": items, "total": total, "limit": query.limit,
                                            "offset": query.offset})
    return json_response(page)
