"""GET /admin/outbox?state=dead|pending|sent (admin) — outbox rows, newest first; dead ones can be re-queued."""

import functions_framework.aio

from functions.orders import outbox
from functions.orders.models import OutboxEntry, OutboxPage, OutboxQuery
from shared.auth import require_admin
from shared.http import endpoint, json_response, parse_query
from shared.postgres import in_transaction


@functions_framework.aio.http
@endpoint("orders-list-outbox")
async def list_outbox(request):
    await require_admin(request.headers)
    query = parse_query(OutboxQuery, request)
    rows, total = await in_transaction(lambda db: outbox.entries(db, query.state, query.limit, query.offset))
    return json_response(OutboxPage.model_validate({"items": [OutboxEntry.from_row(row) for row in rows],
                                                    "total": total, "limit": query.limit, "offset": query.offset}))
