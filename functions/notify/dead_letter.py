"""notify-dead-letter — the Trigger's dead-letter sink: events the broker gave up on are stored (for an admin to
list and replay) and counted; the log names them by id and type only, never their data (contact details)."""

import functions_framework.aio
from prometheus_client import Counter

from functions.notify import service
from shared.http import event_endpoint
from shared.logs import logger

DEAD_LETTERS = Counter("shop_dead_letters", "Events the broker could not deliver, by type", ["type"])
_log = logger("notify.dead_letter")


@functions_framework.aio.cloud_event
@event_endpoint("notify-dead-letter")
async def dead_letter(event):
    dead_letter_id = await service.keep_dead_letter(event)
    DEAD_LETTERS.labels(event["type"]).inc()
    _log.error("event dead-lettered", extra={"dead_letter_id": str(dead_letter_id), "event_id": event["id"],
                                            "event_type": event["type"]})
