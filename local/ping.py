"""A stand-in for a Knative PingSource: POST a ping CloudEvent to a function, once or on a timer.

    python -m local.ping --url http://127.0.0.1:8120 [--every 5]
"""

from __future__ import annotations

import argparse
import time
import uuid

import httpx

PING_SOURCE = "/apis/v1/namespaces/local/pingsources/orders-outbox-relay"


def ping(url: str, timeout: float = 60) -> int:
    """Send one ping event in binary mode, as a PingSource does; returns the HTTP status."""
    headers = {"ce-specversion": "1.0", "ce-type": "dev.knative.sources.ping", "ce-id": uuid.uuid4().hex,
               "ce-source": PING_SOURCE, "content-type": "application/json"}
    return httpx.post(url, headers=headers, content=b"{}", timeout=timeout).status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--every", type=float, help="seconds between pings; once when omitted")
    options = parser.parse_args()
    while True:
        try:
            print(f"ping {options.url}: {ping(options.url)}", flush=True)
        except httpx.HTTPError as error:
            print(f"ping {options.url} failed: {error!r}", flush=True)
        if not options.every:
            return
        time.sleep(options.every)


if __name__ == "__main__":
    main()
