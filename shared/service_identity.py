"""Who is calling: every internal function checks its caller in the application, whether or not a mesh is there.

Two kinds of signed, short-lived tokens, both JWTs:
- **Service tokens** between functions (X-Service-Token): `iss` = `sub` = the calling function, `aud` = the target
  function, a few minutes of `exp`, signed (EdDSA) with the caller's own private key, which only it holds
  (shared.service_tokens). A target holds the public keys of the callers its route lists, and nothing else.
- **Event sender tokens** on deliveries (Authorization: Bearer), as Knative Eventing's `authentication-oidc`
  feature sends them: `iss` = the cluster's ServiceAccount issuer, `sub` = the ServiceAccount of the Trigger or
  PingSource, `aud` = the consumer's audience, checked against the issuer's JWKS. The local runner, which plays
  broker and PingSource, issues the same kind with a key of its own.

Why (after reading knative/eventing pkg/auth and the sender-identity docs): Knative gives each sender its own
ServiceAccount and asks the Kubernetes TokenRequest API for a token whose audience is the target; the target
verifies issuer, audience and signature. For events we verify exactly that. Between functions we keep the shape
but not the TokenRequest: a function does not talk to the Kubernetes API (its pod mounts no ServiceAccount
token, on purpose), and the mesh cannot tell callers apart on its own, because Knative's activator re-sends
requests to a scaled-from-zero function as itself. So each function gets its own key pair: a compromised
function can speak only as itself, only to the targets that list it, and no verifier can mint (the keys are
asymmetric and unrelated to the user-token keys).

Answers: 401 for a missing, malformed, badly signed, expired or wrongly addressed token; 403 for a caller the
route table does not list. On event deliveries both are permanent refusals: the broker retries only 5xx, 404,
408, 409 and 429 (knative/eventing pkg/kncloudevents/retries.go, SelectiveRetry) and dead-letters the rest, where
an operator sees it and may replay it; a forger gets nothing to retry.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache

from shared.errors import Forbidden, Problem, ServiceUnavailable, Unauthorized
from shared.logs import logger
from shared.routes import ROUTES_BY_NAME, Route
from shared.settings import EventSenderSettings, settings
from shared.verified_tokens import VerifiedTokens

SERVICE_TOKEN_HEADER = "X-Service-Token"
SERVICE_ALGORITHM = "EdDSA"
# Kubernetes signs ServiceAccount tokens with RS256 or ES256; the local runner with ES256.
SENDER_ALGORITHMS = ["RS256", "ES256", "EdDSA"]
LEEWAY_SECONDS = 5  # clock skew between pods
# How long a service token lives (shared.service_tokens signs them so). A longer one is refused: a leaked signing
# key cannot mint tokens that outlive the key's rotation.
SERVICE_TOKEN_SECONDS = 300
_log = logger("identity")
_PEM_END = "-----END PUBLIC KEY-----"


def caller_key_variable(caller: str) -> str:
    """The variable holding `caller`'s public key (PEM) in a function that `caller` may call."""
    return "CALLER_KEY_" + caller.upper().replace("-", "_")


def function_callers(route: Route) -> tuple[str, ...]:
    """The functions (not platform senders) that may call `route`."""
    return tuple(caller for caller in route.callers if caller in ROUTES_BY_NAME)


def needs_service_token(route: Route) -> bool:
    """Internal HTTP routes that functions call. (Public routes answer users, checked by their user tokens;
    Alertmanager, which cannot sign, keeps to the webhook's admin token and the mesh's policy.)"""
    return route.visibility != "public" and route.signature == "http" and bool(function_callers(route))


def check_caller(route: Route, headers) -> str | None:
    """The verified calling function of an internal route (None where the route takes no service token)."""
    allowed = _guarded(route.name)
    if allowed is None:
        return None
    return verify_service_token(headers.get(SERVICE_TOKEN_HEADER), route.name, allowed, caller_key)


@lru_cache(maxsize=None)
def _guarded(name: str) -> tuple[str, ...] | None:
    route = ROUTES_BY_NAME[name]
    return function_callers(route) if needs_service_token(route) else None


def verify_service_token(token: str | None, audience: str, allowed: tuple[str, ...], key_of) -> str:
    """The caller named by a valid `token` addressed to `audience`, if it is one of `allowed`."""
    if not token:
        raise Unauthorized(f"Calls to {audience} need a service token ({SERVICE_TOKEN_HEADER})")
    remembered = _service_tokens.get(token, audience)
    if remembered is not None:
        return remembered
    import jwt  # here, as below: a public route never loads PyJWT and cryptography

    try:
        caller = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.InvalidTokenError:
        raise Unauthorized("The service token is malformed") from None
    if caller not in allowed:  # no key to check it with: refused whoever signed it
        raise Forbidden(f"{caller!r} may not call {audience}")
    keys = key_of(caller)
    if not keys:
        raise Unauthorized(f"This function holds no key for {caller}")
    for key in keys:  # several while a caller's key is rotated: the new one and the one it replaces
        try:
            claims = jwt.decode(token, key, algorithms=[SERVICE_ALGORITHM], audience=audience, issuer=caller,
                                leeway=LEEWAY_SECONDS, options={"require": ["iss", "aud", "exp", "iat"]})
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The service token has expired") from None
        except jwt.InvalidTokenError as error:
            raise Unauthorized(f"The service token is invalid: {error}") from None
        _check_lifetime(claims, "service", SERVICE_TOKEN_SECONDS)
        _service_tokens.remember(token, audience, caller, claims["exp"])
        return caller
    raise Unauthorized(f"The service token is not signed by {caller}'s key")


def check_sender(route: Route, headers) -> str:
    """The verified sender (`sub`) of an event delivery: a Trigger or PingSource this consumer expects."""
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(f"Deliveries to {route.name} need a sender token (Authorization: Bearer)")
    token = token.strip()
    remembered = _sender_tokens.get(token, route.name)
    if remembered is not None:
        return remembered
    import jwt

    config = settings(EventSenderSettings)
    try:
        key = _sender_keys(config.event_sender_jwks).get(jwt.get_unverified_header(token).get("kid"))
        if key is None:
            raise jwt.InvalidTokenError("no key of the issuer has this token's kid")
        claims = jwt.decode(token, key, algorithms=SENDER_ALGORITHMS, audience=config.event_audience,
                            issuer=config.event_sender_issuer, leeway=LEEWAY_SECONDS,
                            options={"require": ["iss", "sub", "aud", "exp", "iat"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The sender token has expired") from None
    except jwt.InvalidTokenError as error:
        raise Unauthorized(f"The sender token is invalid: {error}") from None
    _check_lifetime(claims, "sender", config.event_sender_max_token_seconds)
    if claims["sub"] not in _subjects(config.event_sender_subjects):
        raise Forbidden(f"{claims['sub']!r} may not deliver events to {route.name}")
    _sender_tokens.remember(token, route.name, claims["sub"], claims["exp"])
    return claims["sub"]


def _check_lifetime(claims: dict, kind: str, most_seconds: int) -> None:
    """Refuse a token issued to live longer than `most_seconds`: a stolen one would be good for that long."""
    if not all(isinstance(claims[name], int | float) for name in ("exp", "iat")):
        raise Unauthorized(f"The {kind} token's exp and iat must be numbers")
    if claims["exp"] - claims["iat"] > most_seconds + LEEWAY_SECONDS:
        raise Unauthorized(f"A {kind} token may live at most {most_seconds} s")


@lru_cache(maxsize=None)
def caller_key(caller: str) -> tuple:
    """`caller`'s public keys: its variable holds one PEM block, or more while the key is rotated."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    # Read straight from the environment: one variable per listed caller, named by the route table.
    pem = os.environ.get(caller_key_variable(caller), "")
    blocks = [block + _PEM_END for block in pem.split(_PEM_END) if block.strip()]
    try:
        return tuple(load_pem_public_key(block.encode()) for block in blocks)
    except ValueError:
        raise ServiceUnavailable(f"This function is misconfigured: check {caller_key_variable(caller)}") from None


@lru_cache(maxsize=4)
def _sender_keys(jwks: str) -> dict:
    import jwt

    try:
        return {key.key_id: key.key for key in jwt.PyJWKSet.from_json(jwks).keys}
    except (jwt.PyJWKSetError, json.JSONDecodeError, ValueError):
        raise ServiceUnavailable("This function is misconfigured: check EVENT_SENDER_JWKS") from None


def guard_deliveries(route_name: str) -> None:
    """Check the sender of every CloudEvent delivered to this process before its body is read.

    functions-framework hands a CloudEvent function the event only, never the request and its Authorization
    header; so the request handler it builds around the function (pinned 3.10.2, `_cloudevent_func_wrapper`,
    looked up when the app is created, after the function's module is imported) is wrapped once here. The
    forged-event tests fail if a new version stops calling it."""
    import functions_framework.aio as framework

    route = ROUTES_BY_NAME[route_name]
    build = framework._cloudevent_func_wrapper
    if getattr(build, "guarded", False):
        return

    def guarded_build(function, is_async, enable_id_logging=False):
        handler = build(function, is_async, enable_id_logging)

        async def checked(request):
            try:
                check_sender(route, request.headers)
            except Problem as refusal:
                from shared.http import problem_response  # shared.http imports this module

                _log.warning("delivery refused", extra={"route": route.name, "status": refusal.status,
                                                        "detail": refusal.detail})
                return problem_response(refusal)
            return await handler(request)

        return checked

    guarded_build.guarded = True
    framework._cloudevent_func_wrapper = guarded_build


@lru_cache(maxsize=4)
def _subjects(listed: str) -> frozenset[str]:
    return frozenset(subject.strip() for subject in listed.split(",") if subject.strip())


# One per kind: a token verified as one kind is never taken as the other from a cache.
_service_tokens: VerifiedTokens[str] = VerifiedTokens()
_sender_tokens: VerifiedTokens[str] = VerifiedTokens()
