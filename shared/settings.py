"""Typed settings, one small class per concern, each read from the environment on first use.

A function only needs the variables of the concerns it touches; a wrong or missing value fails with a message
that names the variable. Local defaults live in the local runner, not here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import ClassVar, Literal, Self, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from shared.errors import ServiceUnavailable
from shared.logs import never_log


class Settings(BaseModel):
    """One concern's settings: each field from the variable named like it in capitals (or its validation alias),
    in any case, as pydantic-settings reads them. Values are strings, validated by the field's type; a JSON value
    is a string field its class parses (user_token_hs256_keys). Not pydantic-settings itself: importing it cost a
    function's cold start ~35 ms of CPU for sources (dotenv, secrets dirs, cloud vaults, a CLI) we never use."""

    # defer_build: a class's validator is built the first time it is read, not when this module is imported.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)
    environment_prefix: ClassVar[str] = ""  # put before each field's name (not before an alias)

    @classmethod
    def from_environment(cls, environment: Mapping[str, str] = os.environ) -> Self:
        present = {name.lower(): value for name, value in environment.items()}
        values = {}
        for name, field in cls.model_fields.items():
            key = field.validation_alias if isinstance(field.validation_alias, str) else name
            variable = key if key != name else cls.environment_prefix + name
            if variable.lower() in present:
                values[key] = present[variable.lower()]
        return cls.model_validate(values)


# A secret that is not a SecretStr (a URL with its password): mounted only into the functions that read it, as
# every SecretStr field is (local/environment.py derives which from the code).
SECRET = {"secret": True}


class MongoSettings(Settings):
    mongodb_url: str = Field(pattern=r"^mongodb(\+srv)?://", json_schema_extra=SECRET)
    mongodb_database: str = "shop"
    mongodb_timeout_ms: int = Field(default=1500, ge=100, le=10_000)


class RedisSettings(Settings):
    redis_url: str = Field(pattern=r"^rediss?://", json_schema_extra=SECRET)
    redis_key_prefix: str = "shop:"
    redis_timeout_seconds: float = Field(default=1.0, gt=0, le=2)
    cart_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    # REDIS_URL is then one startup node of a Redis Cluster; the client finds the others and routes by key slot.
    redis_cluster: bool = False


class PostgresSettings(Settings):
    database_url: str = Field(pattern=r"^postgres(ql)?://", json_schema_extra=SECRET)
    database_timeout_seconds: float = Field(default=1.5, gt=0, le=2)
    # Open connections per process: requests past it wait this long for one, then get 503.
    database_max_connections: int = Field(default=8, ge=1, le=100)
    database_acquire_timeout_seconds: float = Field(default=1.0, gt=0, le=10)
    # "transaction" when DATABASE_URL is a PgBouncer in transaction pooling: no named prepared statements.
    database_pooler: Literal["none", "transaction"] = "none"


class StockSettings(Settings):
    # A reservation no paid order confirmed within this long is released by the catalog's sweep.
    reservation_ttl_seconds: float = Field(default=60, gt=0, le=3600)


class CatalogSettings(Settings):
    # How long a product read may be served from this instance's memory (0: never); also the max-age an edge
    # may keep it. Stock shown may lag by this much; reservations never read from the cache.
    product_cache_ttl_seconds: float = Field(default=2, ge=0, le=60)
    product_cache_max_entries: int = Field(default=10_000, ge=1, le=1_000_000)
    # The server-side time limit (maxTimeMS) of a search; past it the search answers 503.
    search_max_time_ms: int = Field(default=1000, ge=10, le=10_000)


class CheckoutSettings(Settings):
    """How long an unfinished order may wait for its request before the sweep resolves it, and retry limits."""

    order_lease_seconds: float = Field(default=20, gt=0, le=600)
    idempotency_wait_seconds: float = Field(default=3, ge=0, le=30)
    outbox_max_attempts: int = Field(default=12, ge=1, le=100)
    outbox_max_backoff_seconds: float = Field(default=30, gt=0, le=3600)
    outbox_first_retry_seconds: float = Field(default=10, ge=0, le=600)


MIN_JWKS_COOLDOWN_SECONDS = 5


class UserTokenSettings(Settings):
    """How user tokens are verified; read only by shared.auth, so only functions that verify user tokens hold it.

    Keys: HS256 secrets by kid (local use) and/or an identity provider's JWKS URL (RS256/ES256). Every key listed
    is accepted at once, chosen by the token's `kid`: add the new key, switch the signer, then remove the old one.
    """

    user_token_issuer: str = Field(min_length=1)
    user_token_audience: str = Field(min_length=1)
    user_token_jwks_url: str | None = Field(default=None, pattern=r"^https?://")
    # A JSON object {"kid": "secret of 32+ characters", ...}, kept whole as one secret; `{}` when only the JWKS signs.
    user_token_hs256_keys: SecretStr = Field(default=SecretStr("{}"), validate_default=True)
    user_token_jwks_timeout_seconds: float = Field(default=1.0, gt=0, le=5)
    user_token_jwks_lifespan_seconds: float = Field(default=300, gt=0, le=24 * 3600)
    # At most one fetch per this long for a kid the cached key set does not know, and after a failed fetch; a
    # floor, else each made-up kid could make the provider be asked again.
    user_token_jwks_cooldown_seconds: float = Field(default=30, ge=MIN_JWKS_COOLDOWN_SECONDS, le=3600)

    @field_validator("user_token_hs256_keys")
    @classmethod
    def _usable_keys(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        keys = _hs256_keys(value)  # messages never quote the value: it holds the secrets
        if not keys and not info.data.get("user_token_jwks_url"):
            raise ValueError("set USER_TOKEN_HS256_KEYS or USER_TOKEN_JWKS_URL")
        return value

    def hs256_keys(self) -> dict[str, str]:
        """The HS256 secrets by kid."""
        return _hs256_keys(self.user_token_hs256_keys)


def _hs256_keys(value: SecretStr) -> dict[str, str]:
    try:
        keys = json.loads(value.get_secret_value())
    except ValueError:
        raise ValueError("not a JSON object") from None
    if not isinstance(keys, dict) or not all(
            isinstance(kid, str) and kid and isinstance(secret, str) and len(secret) >= 32
            for kid, secret in keys.items()):
        raise ValueError('a JSON object {"kid": "secret of at least 32 characters", ...}')
    if any("CHANGE-ME" in secret for secret in keys.values()):  # knative/secrets.example.yaml's placeholder
        raise ValueError("a key is still the example's placeholder: put a random secret there")
    return keys


class CardFingerprintSettings(Settings):
    """The key of the card number's fingerprint (an HMAC): its own secret, held and read only by orders."""

    card_fingerprint_key: SecretStr = Field(min_length=32)


class ServiceKeySettings(Settings):
    """This function's own private service key (PEM): it signs the tokens it calls other functions with."""

    service_private_key: SecretStr


class EventSenderSettings(Settings):
    """Who may deliver events to this function: OIDC tokens as Knative Eventing's `authentication-oidc` issues
    them (or the local runner, which plays broker and PingSource), checked against the issuer's public keys."""

    event_sender_issuer: str = Field(min_length=1)
    event_sender_jwks: str = Field(min_length=2)  # a JSON Web Key Set: public keys only
    event_sender_subjects: str = Field(min_length=1)  # comma-separated `sub`s: the senders' ServiceAccounts
    event_audience: str = Field(min_length=1)
    # A stolen sender token is good until its `exp`: refuse ones issued to live longer than this. Knative asks the
    # TokenRequest API with no expirationSeconds, i.e. Kubernetes' default of an hour.
    event_sender_max_token_seconds: int = Field(default=86400, ge=600)


class PeerSettings(Settings):
    """Where this function finds the functions it calls over HTTP."""

    peer_timeout_seconds: float = Field(default=2.0, gt=0, le=10)


class EventSettings(Settings):
    # Injected by a Knative SinkBinding; unset means events stay in the outbox until a sink appears.
    k_sink: str | None = None


class ServerSettings(Settings):
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # The share of answered requests (below 400, faster than a second) with an access log line; every error and
    # every slow request has one. Metrics count every request either way.
    access_log_sample: float = Field(default=1.0, ge=0, le=1)
    k_service: str | None = None


S = TypeVar("S", bound=Settings)


@lru_cache(maxsize=None)
def settings(kind: type[S]) -> S:
    """The validated settings of one concern, read from the environment once per process."""
    try:
        loaded = kind.from_environment()
    except ValidationError as error:
        # Named, never shown: the message and the exception chain carry no value (a wrong DATABASE_URL holds a
        # password), and the values are kept out of every log line in case something else prints them.
        problems = error.errors(include_url=False, include_input=False, include_context=False)
        never_log(*(str(value) for value in _inputs(error)))
        named = "; ".join(f"{kind.environment_prefix}{e['loc'][0]}".upper() + f" ({e['type']})" if e["loc"]
                          else f"{kind.__name__} ({e['type']})" for e in problems)
        raise ServiceUnavailable(f"This function is misconfigured: check {named}") from None
    never_log(*_secret_values(loaded))
    return loaded


def _inputs(error: ValidationError) -> list:
    return [e["input"] for e in error.errors() if isinstance(e.get("input"), str)]


def _secret_values(loaded: Settings) -> list[str]:
    """Secret strings and the passwords of URLs: what a log line must never show."""
    found = []
    for value in vars(loaded).values():
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, str) and "://" in value:
            password = urlsplit(value).password
            found += [password, unquote(password)] if password else []
    return found


class NotifySettings(Settings):
    notify_backend: Literal["log", "aws"] = "log"
    notify_email_from: str = Field(default="shop@example.com", pattern=r"^[^@\s]+@[^@\s]+$")
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
