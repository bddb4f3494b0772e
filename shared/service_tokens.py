"""The service tokens this function calls others with, signed with its own private key (SERVICE_PRIVATE_KEY).

Only functions that call others import this module, and so only they are given a private key (the environment
is derived from what each function's code reads: local/environment.py). See shared.service_identity for the
token's form and why it is built this way.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache

from shared.routes import BROKER
from shared.service_identity import SERVICE_ALGORITHM, SERVICE_TOKEN_HEADER, SERVICE_TOKEN_SECONDS
from shared.settings import ServerSettings, ServiceKeySettings, settings

TOKEN_SECONDS = SERVICE_TOKEN_SECONDS
RENEW_BEFORE_SECONDS = 60  # a token is replaced this long before it expires, so none arrives expired
# Where a Knative SinkBinding with `authentication-oidc` mounts the OIDC token for the broker (knative/eventing
# pkg/apis/sources/v1/sinkbinding_lifecycle.go: a projected Secret volume at /oidc).
SINK_TOKEN_FILE = "/oidc/token"

_issued: dict[str, tuple[str, float]] = {}  # audience -> (token, expires): signing costs ~0.1 ms, reuse is free


def service_token(audience: str) -> str:
    """A token naming this function to `audience`, reused until shortly before it expires."""
    now = time.time()
    cached = _issued.get(audience)
    if cached is not None and cached[1] - now > RENEW_BEFORE_SECONDS:
        return cached[0]
    import jwt  # here: a function that imports this module but calls no peer never loads PyJWT

    caller = settings(ServerSettings).k_service
    expires = int(now) + TOKEN_SECONDS
    token = jwt.encode({"iss": caller, "sub": caller, "aud": audience, "iat": int(now), "exp": expires},
                       _private_key(), algorithm=SERVICE_ALGORITHM)
    _issued[audience] = (token, expires)
    return token


def service_headers(target: str) -> dict[str, str]:
    return {SERVICE_TOKEN_HEADER: service_token(target)}


def sink_headers() -> dict[str, str]:
    """What proves this publisher to the broker: the OIDC token Knative mounts, else (the local runner's broker)
    a service token addressed to the broker."""
    if os.path.exists(SINK_TOKEN_FILE):
        with open(SINK_TOKEN_FILE) as token_file:
            return {"Authorization": f"Bearer {token_file.read().strip()}"}
    return service_headers(BROKER)


@lru_cache(maxsize=1)
def _private_key():
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    pem = settings(ServiceKeySettings).service_private_key.get_secret_value()
    return load_pem_private_key(pem.encode(), password=None)
