"""POST /notifications (admin) — send an email or sms now, from a template or a given body; 202 with its id."""

import functions_framework.aio

from functions.notify import service
from functions.notify.models import Accepted, NotificationRequest
from shared.auth import require_admin
from shared.http import endpoint, json_response, parse_body


@functions_framework.aio.http
@endpoint("notify-send-notification")
async def send_notification(request):
    await require_admin(request.headers)
    notification_id = await service.send_requested(await parse_body(NotificationRequest, request))
    return json_response(Accepted(id=str(notification_id), status="sent"), 202)
