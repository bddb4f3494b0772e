"""POST /internal/alerts?to=<email> (cluster-local) — Alertmanager's webhook receiver: one e-mail per notification
group, through the notification ledger, so a group Alertmanager sends again is not e-mailed twice.

Alertmanager authenticates with an admin bearer token from a file it mounts (a stand-in until functions have a
service identity of their own)."""

import functions_framework.aio

from functions.notify import service
from functions.notify.models import Accepted, AlertGroup, AlertRecipient
from shared.auth import require_admin
from shared.http import endpoint, json_response, parse_body, parse_query


@functions_framework.aio.http
@endpoint("notify-alert-webhook")
async def alert_webhook(request):
    await require_admin(request.headers)
    recipient = parse_query(AlertRecipient, request).to
    notification_id = await service.send_alert_group(await parse_body(AlertGroup, request), recipient)
    return json_response(Accepted(id=str(notification_id), status="sent"), 202)
