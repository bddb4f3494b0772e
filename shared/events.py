"""CloudEvents out: binary-mode HTTP POST to K_SINK (the broker a Knative SinkBinding injects)."""

from __future__ import annotations

from datetime import datetime

from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from shared import peers
from shared.errors import ServiceUnavailable
from shared.service_tokens import sink_headers
from shared.settings import EventSettings, settings


class SinkUnavailable(ServiceUnavailable):
    """The event could not be handed to the sink; it stays in the outbox for the relay."""


async def publish(event_id: str, event_type: str, source: str, subject: str, data: dict, time: datetime) -> None:
    sink = settings(EventSettings).k_sink
    if not sink:
        raise SinkUnavailable("K_SINK is not set: no broker to publish to")
    event = CloudEvent({"id": event_id, "type": event_type, "source": source, "subject": subject,
                        "time": time.isoformat(), "datacontenttype": "application/json"}, data)
    headers, body = to_binary(event)
    try:
        headers |= sink_headers()
        response = await peers.client().send_to_peer("POST", sink, headers=headers, content=body)
    except Exception as error:  # noqa: BLE001 - any transport failure leaves the event pending
        raise SinkUnavailable(f"The sink did not take the event: {type(error).__name__}") from error
    if not 200 <= response.status_code < 300:
        raise SinkUnavailable(f"The sink answered {response.status_code}")
