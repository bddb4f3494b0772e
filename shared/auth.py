"""Bearer user tokens, checked as a real API checks them: a key chosen by the token's `kid`, then `exp`, `iss`, `aud`.

The keys (UserTokenSettings) are HS256 secrets by kid for local use and/or an identity provider's JWKS
(RS256/ES256). Each key verifies with its own algorithm only, whatever the token's header claims, so `alg: none`
and algorithm confusion (an HS256 token keyed with an RSA public key) fail. Nothing here signs: the provider mints
tokens, or, locally, local/token.py.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from shared.errors import Forbidden, NotFound, ServiceUnavailable, Unauthorized
from shared.logs import logger, never_log
from shared.settings import UserTokenSettings, settings

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
    A fetch is synchronous (verification is called from sync and async handlers alike): it holds the caller for
    at most USER_TOKEN_JWKS_TIMEOUT_SECONDS, once per cooldown at most.
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
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = time.monotonic()
            wanted = kid not in self._keys or now - self._fetched_at >= self._lifespan
            if wanted and now - self._tried_at >= self._cooldown:
                self._fetch(now)
            found = self._keys.get(kid)
            if found is not None:
                return found
            if self._failing:
                raise ServiceUnavailable("The identity provider's keys cannot be fetched; retry shortly",
                                         retry_after=max(1, round(self._cooldown - (now - self._tried_at))))
            raise Unauthorized("The token's key (kid) is unknown")

    def _fetch(self, now: float) -> None:
        import jwt

        self._tried_at = now
        try:
            keys = self._client.get_signing_keys(refresh=True)
        except (jwt.PyJWKClientError, jwt.PyJWKSetError) as error:
            self._failing = True
            _log.warning("identity provider keys unavailable", extra={"cause": repr(error)})
            return
        self._keys = {key.key_id: key for key in keys if key.algorithm_name in PROVIDER_ALGORITHMS}
        self._fetched_at, self._failing = now, False


class Keys:
    """Every key that verifies user tokens, by kid: the local HS256 secrets first, then the provider's."""

    def __init__(self, config: UserTokenSettings) -> None:
        secrets = config.hs256_keys()
        never_log(*secrets.values())  # each key alone too: the settings register only the whole JSON
        self.local = {kid: _hs256(secret) for kid, secret in secrets.items()}
        self.provider = ProviderKeys(config) if config.user_token_jwks_url else None

    def key(self, kid: str) -> jwt.PyJWK:
        found = self.local.get(kid)
        if found is not None:
            return found
        if self.provider is None:
            raise Unauthorized("The token's key (kid) is unknown")
        return self.provider.key(kid)


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


def verify(token: str) -> User:
    """The user a token names, or Unauthorized (503 only when the provider's keys cannot be fetched)."""
    import jwt

    key = keys().key(_kid(token))
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
    return User(id=claims["sub"], role=role)


def _kid(token: str) -> str:
    # Only picks the key: jwt.decode checks the whole token with it. Read here because PyJWT's
    # get_unverified_header decodes every segment, a third of a verification's cost.
    segment = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:  # binascii.Error and JSONDecodeError included
        raise Unauthorized("The token is malformed") from None
    kid = header.get("kid") if isinstance(header, dict) else None
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("The token names no key (kid)")
    return kid


def optional_user(headers) -> User | None:
    """The caller when a token is sent (it must then be valid), else None."""
    header = headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Use 'Authorization: Bearer <token>'")
    return verify(token.strip())


def require_user(headers) -> User:
    user = optional_user(headers)
    if user is None:
        raise Unauthorized("This endpoint needs a bearer token")
    return user


def require_admin(headers) -> User:
    user = require_user(headers)
    if not user.is_admin:
        raise Forbidden("This endpoint is for admins")
    return user


def require_owner(headers, user_id: str, what: str, *, admin_may: bool = False) -> User:
    """The caller, when `user_id`'s `what` (its cart, its orders) is theirs, or they are an admin and `admin_may`.

    Another customer is told it is not found (404), exactly what they get for a user id nobody has, decided before
    any lookup: an owner check reveals nothing (OWASP API1). An admin is told 403: admins may know what exists.
    """
    user = require_user(headers)
    if user.id == user_id or (user.is_admin and admin_may):
        return user
    if user.is_admin:
        raise Forbidden(f"Admins may read but not change a customer's {what}")
    raise NotFound(f"No {what} for user '{user_id}'")
