"""Calls between functions over HTTP: one httpx.AsyncClient per process, short timeouts, a bounded retry.

A function reaches another by its route-table name, at the URL in `<NAME>_URL` (e.g. CATALOG_LOOKUP_PRODUCTS_URL):
in a cluster the generated manifests set it to the Service's cluster-local URL
(`http://catalog-lookup-products.shop.svc.cluster.local`: Knative's local gateway answers no bare name), and the
local runner and the compose file point it at where that function runs there.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from shared.errors import BadGateway, RecordedProblem, ServiceUnavailable
from shared.logs import request_id
from shared.loop_local import per_event_loop
from shared.service_tokens import service_headers
from shared.settings import PeerSettings, settings

if TYPE_CHECKING:
    import ssl

    import httpx

# httpx's command line (httpx/_main.py), imported by `import httpx`, loads rich and pygments wherever they are
# installed (the dev environment, not the image): ~35 ms of CPU for a tool no function runs. A None entry makes
# that import fail, which httpx expects (its `main` then asks for httpx[cli]).
sys.modules.setdefault("httpx._main", None)


def service_url(name: str) -> str:
    """Where function `name` answers; a function the route table does not let this one call has no URL."""
    url = os.environ.get(url_variable(name))
    if not url:
        raise ServiceUnavailable(f"The {name} service has no address here: {url_variable(name)} is not set")
    return url


def url_variable(name: str) -> str:
    return name.upper().replace("-", "_") + "_URL"


def _new_client() -> httpx.AsyncClient:
    """The shared HTTP client for calls to other functions (and the event sink)."""
    import ssl

    import httpx  # here: a function that never calls another one does not pay for importing it

    from shared.peer_client import PeerClient

    timeout = settings(PeerSettings).peer_timeout_seconds
    # retries=2 re-tries connection failures only (never a request that may have reached the peer). The limits
    # go to the transports: a client given a transport ignores its own.
    options = {"retries": 2, "limits": httpx.Limits(max_connections=100, max_keepalive_connections=50)}
    # Peers are cluster-local http:// URLs, so the verifying TLS context (the certifi bundle: ~40 ms of a cold
    # start) is built on the first https:// call only. The http:// transport is given a context that trusts no
    # certificate instead of the default one: it never dials TLS, and would refuse any server if it did.
    trusting_none = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    plain = _on_asyncio_sockets(httpx.AsyncHTTPTransport(verify=trusting_none, **options), options, trusting_none)
    return PeerClient(timeout=httpx.Timeout(timeout, connect=min(1.0, timeout)), transport=plain,
                      https=_verifying_on_first_use(options))


def _on_asyncio_sockets(transport: httpx.AsyncHTTPTransport, options: dict,
                        ssl_context: ssl.SSLContext) -> httpx.AsyncHTTPTransport:
    """`transport` with its connection pool on asyncio's own sockets (shared.peer_network) instead of anyio's
    streams, which cost ~80 µs of CPU per call. httpx keeps everything else: the request and response models,
    exception mapping, timeouts. It builds the pool privately (`_pool`) and takes no network backend, so the pool
    is built again here with the same limits and retries (plain TCP: this transport serves http:// only);
    tests/security/test_peer_calls.py fails if an httpx release stops calling through `_pool`."""
    import httpcore

    from shared.peer_network import PlainTCP

    if set(options) != {"limits", "retries"}:  # anything else given to the transport would be lost here
        raise ValueError(f"the pool is rebuilt from limits and retries only, not {sorted(options)}")
    limits = options["limits"]
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,  # the transport's own: it trusts no certificate
        max_connections=limits.max_connections, max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry, retries=options["retries"], network_backend=PlainTCP())
    return transport


def _verifying_on_first_use(options: dict) -> httpx.AsyncBaseTransport:
    """A transport for https:// URLs that builds httpx's default, verifying one on its first request."""
    import httpx

    class VerifyingOnFirstUse(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self._transport: httpx.AsyncHTTPTransport | None = None

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if self._transport is None:
                self._transport = httpx.AsyncHTTPTransport(**options)
            return await self._transport.handle_async_request(request)

        async def aclose(self) -> None:
            if self._transport is not None:
                await self._transport.aclose()

    return VerifyingOnFirstUse()


client = per_event_loop(_new_client)


async def call(name: str, method: str, path: str, *, params=None, json=None, headers=None,
               expected: tuple[int, ...] = (200,)) -> httpx.Response:
    """Call function `name`; an unreachable or failing peer becomes 503/502, never a hang or a 500."""
    import httpx

    outgoing = {"X-Request-Id": request_id.get() or "", **service_headers(name), **(headers or {})}
    try:
        response = await client().send_to_peer(method, service_url(name) + path, params=params, json=json,
                                               headers=outgoing)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
        raise ServiceUnavailable(f"The {name} service is unavailable") from error
    except httpx.TimeoutException as error:
        raise ServiceUnavailable(f"The {name} service did not answer in time") from error
    except httpx.HTTPError as error:
        raise BadGateway(f"The {name} service failed: {type(error).__name__}") from error
    if response.status_code in expected:
        return response
    if response.status_code >= 500:
        raise ServiceUnavailable(f"The {name} service answered {response.status_code}")
    raise PeerRefused(response)


def parsed(model, response, name: str):
    """`response`'s body as `model`; a body outside the contract (another version mid-rollout, a proxy's page) is
    the peer's failure, 502, not ours."""
    from pydantic import ValidationError

    try:
        return model.model_validate_json(response.content)
    except ValidationError:
        raise BadGateway(f"The {name} service answered a body this function cannot read") from None


class PeerRefused(RecordedProblem):
    """A peer's 4xx answer, carried through with its status and detail unless the caller handles it."""

    def __init__(self, response: httpx.Response):
        try:
            body = response.json()
        except ValueError:
            body = {}
        super().__init__(response.status_code, body if isinstance(body, dict) else {})
