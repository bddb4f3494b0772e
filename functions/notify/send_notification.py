"""POST /notifications (admin) — send an email or sms now, from a template or a given body; 202 with its id.

With an `Idempotency-Key` the message is sent once per key (the ledger's delivery key): a retry after a lost answer
sends nothing and answers the same id, marked `Idempotent-Replayed: true`; the key with another message is 422.
"""

import functions_framework.aio

from functions.notify import service
from functions.notify.models import Accepted, NotificationRequest
from shared.auth import require_admin
from shared.http import REPLAYED, endpoint, json_response, parse_body
from shared.ids import idempotency_key, senders_key


@functions_framework.aio.http
@endpoint("notify-send-notification")
async def send_notification(request):
    admin = await require_admin(request.headers)
    key = idempotency_key(request.headers, required=False)
    message = await parse_body(NotificationRequest, request)
    notification_id, replayed = await service.send_requested(message, key and senders_key(admin.id, key))
    return json_response(Accepted(id=str(notification_id), status="sent"), 202,
                         headers=REPLAYED if replayed else None)
