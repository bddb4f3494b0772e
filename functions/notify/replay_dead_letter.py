"""POST /admin/dead-letters/{dead_letter_id}/replay (admin) — send a dead-lettered event to the broker again, with
its original id, so the ledger still sends each notification once; 202 with the entry."""

import functions_framework.aio

from functions.notify import service
from functions.notify.models import DeadLetterEntry
from shared import events, ids
from shared.auth import require_admin
from shared.http import endpoint, json_response


@functions_framework.aio.http
@endpoint("notify-replay-dead-letter")
async def replay_dead_letter(request, dead_letter_id):
    await require_admin(request.headers)
    key = ids.uuid_or_not_found(dead_letter_id, "dead letter")
    row = await service.replay_dead_letter(key, publish=events.publish)
    return json_response(DeadLetterEntry.from_row(row), 202)
