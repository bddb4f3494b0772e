"""A stand-in for a Knative PingSource: POST a ping CloudEvent to a function, once or on a timer, with the
sender token a PingSource sends under Knative Eventing's `authentication-oidc` (signed with LOCAL_EVENTING_KEY).

    LOCAL_EVENTING_KEY=... python -m local.ping --url http://127.0.0.1:8120 --function orders-outbox-relay [--every 5]
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import httpx

from local.environment import event_audience, event_senders
from local.service_keys import EVENTING, KeySet
from shared.routes import ROUTES_BY_NAME

PING_SOURCE = "/apis/v1/namespaces/local/pingsources/orders-outbox-relay"


def ping_headers(event_id: str) -> dict[str, str]:
    """A ping event's CloudEvent headers in binary mode, as a PingSource sends them (its body is `{}`)."""
    return {"ce-specversion": "1.0", "ce-type": "dev.knative.sources.ping", "ce-id": event_id,
            "ce-source": PING_SOURCE, "content-type": "application/json"}


def ping(url: str, token: str | None = None, timeout: float = 60) -> int:
    """Send one ping event in binary mode, as a PingSource does, with its sender `token`; returns the status."""
    headers = {**ping_headers(uuid.uuid4().hex), **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.post(url, headers=headers, content=b"{}", timeout=timeout).status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--function", required=True, help="the route name pinged: its PingSource's identity")
    parser.add_argument("--every", type=float, help="seconds between pings; once when omitted")
    options = parser.parse_args()
    issuer = KeySet({EVENTING: os.environ["LOCAL_EVENTING_KEY"]})
    route = ROUTES_BY_NAME[options.function]
    while True:
        try:
            token = issuer.sender_token(event_senders(route)[0], event_audience(route.name))
            print(f"ping {options.url}: {ping(options.url, token)}", flush=True)
        except httpx.HTTPError as error:
            print(f"ping {options.url} failed: {error!r}", flush=True)
        if not options.every:
            return
        time.sleep(options.every)


if __name__ == "__main__":
    main()
