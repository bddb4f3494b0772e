"""The local stand-in for the eventing broker, served by the local gateway at /_local/broker (the K_SINK of every
publisher here): it takes an event only from a function allowed to publish, proving itself as it would to a
Knative broker, and delivers it to its subscriber with a sender token, as the Trigger would with Knative
Eventing's `authentication-oidc` on. The subscriber's answer is the publisher's answer: a refused delivery stays
in the publisher's outbox, which tries again (there is no dead-letter sink here).

Its environment (local.environment.broker_environment): LOCAL_BROKER_SUBSCRIBER (the consumer's URL),
LOCAL_BROKER_SUBJECT and LOCAL_BROKER_AUDIENCE (what the sender token says), LOCAL_EVENTING_KEY (the local issuer's
private key) and CALLER_KEY_<PUBLISHER> (each publisher's public key).
"""

from __future__ import annotations

import os
import time

import httpx
from starlette.requests import Request
from starlette.responses import Response

from shared.errors import Problem, ServiceUnavailable
from shared.http import problem_response, read_body
from shared.routes import BROKER, ROUTES
from shared.service_identity import SERVICE_TOKEN_HEADER, caller_key, verify_service_token
from shared.service_tokens import RENEW_BEFORE_SECONDS, TOKEN_SECONDS
from shared.settings import ServerSettings, settings
from local.service_keys import EVENTING, KeySet

BROKER_PATH = "/_local/broker"
PUBLISHERS = tuple(route.name for route in ROUTES if route.publishes)
_FORWARDED = ("content-type", "x-request-id")


def configured() -> bool:
    return bool(os.environ.get("LOCAL_BROKER_SUBSCRIBER") and os.environ.get("LOCAL_EVENTING_KEY"))


def deliverer(client: httpx.AsyncClient):
    """The endpoint taking published events and delivering them to the subscriber."""
    subscriber = os.environ["LOCAL_BROKER_SUBSCRIBER"]
    issuer = KeySet({EVENTING: os.environ["LOCAL_EVENTING_KEY"]})
    subject, audience = os.environ["LOCAL_BROKER_SUBJECT"], os.environ["LOCAL_BROKER_AUDIENCE"]
    issued = {"token": "", "renew_at": 0.0}

    def sender_token() -> str:
        # One token until shortly before it expires, as Knative's dispatcher reuses its own: the subscriber then
        # verifies its signature once, not on every delivery.
        if time.time() >= issued["renew_at"]:
            issued["token"] = issuer.sender_token(subject, audience, ttl_seconds=TOKEN_SECONDS)
            issued["renew_at"] = time.time() + TOKEN_SECONDS - RENEW_BEFORE_SECONDS
        return issued["token"]

    async def deliver(request: Request) -> Response:
        try:
            verify_service_token(request.headers.get(SERVICE_TOKEN_HEADER), BROKER, PUBLISHERS, caller_key)
        except Problem as refusal:
            return problem_response(refusal)
        headers = {key: value for key, value in request.headers.items()
                   if key.lower().startswith("ce-") or key.lower() in _FORWARDED}
        headers["Authorization"] = f"Bearer {sender_token()}"
        try:
            body = await read_body(request, settings(ServerSettings).max_body_bytes)  # as the subscriber would
        except Problem as refusal:
            return problem_response(refusal)
        try:
            delivered = await client.post(subscriber, headers=headers, content=body)
        except httpx.HTTPError as error:
            return problem_response(ServiceUnavailable(f"The subscriber is unreachable: {type(error).__name__}"))
        return Response(delivered.content, status_code=delivered.status_code,
                        media_type=delivered.headers.get("content-type"))

    return deliver
