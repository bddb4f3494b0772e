"""GET /admin/dead-letters?type=|replayed= (admin) — events the broker gave up on, newest first."""

import functions_framework.aio

from functions.notify import store
from functions.notify.models import DeadLetterEntry, DeadLetterPage, DeadLetterQuery
from shared.auth import require_admin
from shared.http import endpoint, json_response, parse_query
from shared.postgres import in_transaction


@functions_framework.aio.http
@endpoint("notify-list-dead-letters")
async def list_dead_letters(request):
    await require_admin(request.headers)
    query = parse_query(DeadLetterQuery, request)
    rows, total = await in_transaction(lambda db: store.search_dead_letters(db, query.type, query.replayed,
                                                                            query.limit, query.offset))
    page = DeadLetterPage(items=[DeadLetterEntry.from_row(row) for row in rows], total=total, limit=query.limit,
                          offset=query.offset)
    return json_response(page)
