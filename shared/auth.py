"""Bearer user tokens, checked as a real API checks them: a key chosen by the token's `kid`, then `exp`, `iss`, `aud`.

The keys (UserTokenSettings) are HS256 secrets by kid for local use and/or an identity provider's JWKS
(RS256/ES256). Each key verifies with its own algorithm only, whatever the token's header claims, so `alg: none`
and algorithm confusion (an HS256 token keyed with an RSA public key) fail. Nothing here signs: the provider mints
tokens, or, locally, local/token.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from shared.errors import Forbidden, NotFound, ServiceUnavailable, Unauthorized
from shared.logs import logger, never_log
from shared.settings import UserTokenSettings, settings
from shared.verified_tokens import VerifiedTokens

if TYPE_CHECKING:
    import jwt  # imported where a token is verified: a public route's anonymous caller never loads PyJWT

Role = Literal["customer", "admin"]
ROLES = ("customer", "admin")
PROVIDER_ALGORITHMS = ("RS256", "ES256")  # what a JWKS key may verify with; a symmetric key there is ignored
REQUIRED_CLAIMS = ["sub", "exp", "iss", "aud"]
_log = logger("auth")


@dataclass(frozen=True)
class User:
    id: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class ProviderKeys:
    """The identity provider's public keys by kid, fetched from its JWKS URL (through PyJWKClient).

    Fetched again when the set is older than its lifespan or a token names a kid it lacks, but at most once per
    cooldown, so tokens with made-up kids cannot make us hammer the provider. While the provider is down the keys
    already fetched keep working; a kid they lack answers 503 at once instead of waiting on each request.
    A fetch runs on its own thread, one at a time: the requests whose kid is unknown wait for that one fetch (at
    most USER_TOKEN_JWKS_TIMEOUT_SECONDS), every other request of the process goes on meanwhile.
    """

    def __init__(self, config: UserTokenSettings) -> None:
        import jwt

        self._client = jwt.PyJWKClient(config.user_token_jwks_url, cache_jwk_set=False,
                                       timeout=config.user_token_jwks_timeout_seconds)
        self._lifespan = config.user_token_jwks_lifespan_seconds
        self._cooldown = config.user_token_jwks_cooldown_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = self._tried_at = float("-inf")
        self._failing = False
        self._fetching: Future | None = None
        self._lock = threading.Lock()  # guards the fields above; never held during a fetch
        self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jwks-fetch")

    async def key(self, kid: str) -> jwt.PyJWK:
        fetch = self._fetch_for(kid)
        if fetch is not None:
            # Shielded: a caller that goes away must not cancel the fetch others wait for.
            await asyncio.shield(asyncio.wrap_future(fetch))
        with self._lock:
            found = self._keys.get(kid)
            if found is not None:
                return found
            if self._failing:
                waited = time.monotonic() - self._tried_at
                raise ServiceUnavailable("The identity provider's keys cannot be fetched; retry shortly",
                                         retry_after=max(1, round(self._cooldown - waited)))
        raise Unauthorized("The token's key (kid) is unknown")

    def _fetch_for(self, kid: str) -> Future | None:
        """The fetch an unknown `kid` must wait for: the one under way, else a new one when due. A known kid waits
        for none: an old set is fetched again meanwhile, and its keys serve until the new set replaces them."""
        with self._lock:
            now = time.monotonic()
            known = kid in self._keys
            if known and now - self._fetched_at < self._lifespan:
                return None
            if self._fetching is None and now - self._tried_at >= self._cooldown:
                self._tried_at = now
                self._fetching = self._fetcher.submit(self._fetch, now)
            return None if known else self._fetching

    def _fetch(self, started: float) -> None:
        keys = None
        try:
            keys = self._client.get_signing_keys(refresh=True)
        except Exception as error:  # noqa: BLE001 - unreachable, slow or garbled: all mean "no keys now"
            _log.warning("identity provider keys unavailable", extra={"cause": repr(error)})
        finally:
            with self._lock:
                if keys is None:
                    self._failing = True
                else:
                    self._keys = {key.key_id: key for key in keys if key.algorithm_name in PROVIDER_ALGORITHMS}
                    self._fetched_at, self._failing = started, False
                self._fetching = None  # whatever happened: a later unknown kid may fetch again


class Keys:
    """Every key that verifies user tokens, by kid: the local HS256 secrets first, then the provider's."""

    def __init__(self, config: UserTokenSettings) -> None:
        secrets = config.hs256_keys()
        never_log(*secrets.values())  # each key alone too: the settings register only the whole JSON
        self.local = {kid: _hs256(secret) for kid, secret in secrets.items()}
        self.provider = ProviderKeys(config) if config.user_token_jwks_url else None

    async def key(self, kid: str) -> jwt.PyJWK:
        found = self.local.get(kid)
        if found is not None:
            return found
        if self.provider is None:
            raise Unauthorized("The token's key (kid) is unknown")
        return await self.provider.key(kid)


def _hs256(secret: str) -> jwt.PyJWK:
    import jwt

    encoded = base64.urlsafe_b64encode(secret.encode()).rstrip(b"=").decode()
    return jwt.PyJWK({"kty": "oct", "k": encoded, "alg": "HS256"})


_current: tuple[UserTokenSettings, Keys] | None = None


def keys() -> Keys:
    """This process's keys, built once per settings (decoded keys and the fetched key set are reused)."""
    global _current
    config = settings(UserTokenSettings)
    if _current is None or _current[0] is not config:
        _current = (config, Keys(config))
    return _current[1]


async def verify(token: str) -> User:
    """The user a token names, or Unauthorized (503 only when the provider's keys cannot be fetched)."""
    import jwt

    key = await keys().key(_kid(token))
    remembered = _verified.get(token, key)  # under its key: a key rotated out takes what it verified with it
    if remembered is not None:
        return remembered
    config = settings(UserTokenSettings)
    try:
        claims = jwt.decode(token, key, algorithms=[key.algorithm_name], audience=config.user_token_audience,
                            issuer=config.user_token_issuer, options={"require": REQUIRED_CLAIMS})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The token has expired") from None
    except jwt.InvalidTokenError as error:
        raise Unauthorized(f"The token is invalid: {error}") from None
    role = claims.get("role", "customer")
    if role not in ROLES or not isinstance(claims["sub"], str) or not claims["sub"]:
        raise Unauthorized("The token's claims are invalid")
    user = User(id=claims["sub"], role=role)
    _verified.remember(token, key, user, claims["exp"])
    return user


# Verifying an HS256 token costs ~50 µs of a request's CPU; a shopper sends the same one for its whole life.
_verified: VerifiedTokens[User] = VerifiedTokens()


def _kid(token: str) -> str:
    # Only picks the key: jwt.decode checks the whole token with it. Read here because PyJWT's
    # get_unverified_header decodes every segment, a third of a verification's cost.
    segment = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):  # binascii.Error and JSONDecodeError are ValueErrors; nesting is not
        raise Unauthorized("The token is malformed") from None
    kid = header.get("kid") if isinstance(header, dict) else None
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("The token names no key (kid)")
    return kid


async def optional_user(headers) -> User | None:
    """The caller when a token is sent (it must then be valid), else None."""
    header = headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Use 'Authorization: Bearer <token>'")
    return await verify(token.strip())


async def require_user(headers) -> User:
    user = await optional_user(headers)
    if user is None:
        raise Unauthorized("This endpoint needs a bearer token")
    return user


async def require_admin(headers) -> User:
    user = await require_user(headers)
    if not user.is_admin:
        raise Forbidden("This endpoint is for admins")
    return user


async def require_owner(headers, user_id: str, what: str, *, admin_may: bool = False) -> User:
    """The caller, when `user_id`'s `what` (its cart, its orders) is theirs, or they are an admin and `admin_may`.

    Another customer is told it is not found (404), exactly what they get for a user id nobody has, decided before
    any lookup: an owner check reveals nothing (OWASP API1). An admin is told 403: admins may know what exists.
    """
    user = await require_user(headers)
    if user.id == user_id or (user.is_admin and admin_may):
        return user
    if user.is_admin:
        raise Forbidden(f"Admins may read but not change a customer's {what}")
    raise NotFound(f"No {what} for user '{user_id}'")
