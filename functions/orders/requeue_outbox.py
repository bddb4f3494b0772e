"""POST /admin/outbox/{outbox_id}/requeue (admin) — a dead row is due again now, with a fresh attempt budget;
the next relay tick delivers it. 404 when no dead row has this id."""

import functions_framework.aio

from functions.orders import outbox
from functions.orders.models import OutboxEntry
from shared import ids
from shared.auth import require_admin
from shared.errors import NotFound
from shared.http import endpoint, json_response
from shared.postgres import in_connection


@functions_framework.aio.http
@endpoint("orders-requeue-outbox")
async def requeue_outbox(request, outbox_id):
    await require_admin(request.headers)
    row_id = ids.uuid_or_not_found(outbox_id, "dead outbox row")
    row = await in_connection(lambda db: outbox.requeue(db, row_id))
    if row is None:
        raise NotFound(f"No dead outbox row '{outbox_id}'")
    return json_response(OutboxEntry.from_row(row))
