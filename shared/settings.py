"""Typed settings, one small class per concern, each read from the environment on first use.

A function only needs the variables of the concerns it touches; a wrong or missing value fails with a message
that names the variable. Local defaults live in the local runner, not here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ServiceUnavailable


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")


class MongoSettings(_Settings):
    mongodb_url: str = Field(pattern=r"^mongodb(\+srv)?://")
    mongodb_database: str = "shop"
    mongodb_timeout_ms: int = Field(default=1500, ge=100, le=2000)


class RedisSettings(_Settings):
    redis_url: str = Field(pattern=r"^rediss?://")
    redis_key_prefix: str = "shop:"
    redis_timeout_seconds: float = Field(default=1.0, gt=0, le=2)
    cart_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)


class PostgresSettings(_Settings):
    database_url: str = Field(pattern=r"^postgres(ql)?://")
    database_timeout_seconds: float = Field(default=1.5, gt=0, le=2)
    # Open connections per process: requests past it wait this long for one, then get 503.
    database_max_connections: int = Field(default=8, ge=1, le=100)
    database_acquire_timeout_seconds: float = Field(default=1.0, gt=0, le=10)


class StockSettings(_Settings):
    # A reservation no paid order confirmed within this long is released by the catalog's sweep.
    reservation_ttl_seconds: float = Field(default=60, gt=0, le=3600)


class CatalogSettings(_Settings):
    # How long a product read may be served from this instance's memory (0: never); also the max-age an edge
    # may keep it. Stock shown may lag by this much; reservations never read from the cache.
    product_cache_ttl_seconds: float = Field(default=2, ge=0, le=60)
    product_cache_max_entries: int = Field(default=10_000, ge=1, le=1_000_000)
    # The server-side time limit (maxTimeMS) of a search; past it the search answers 503.
    search_max_time_ms: int = Field(default=1000, ge=10, le=10_000)


class CheckoutSettings(_Settings):
    """How long an unfinished order may wait for its request before the sweep resolves it, and retry limits."""

    order_lease_seconds: float = Field(default=20, gt=0, le=600)
    idempotency_wait_seconds: float = Field(default=3, ge=0, le=30)
    outbox_max_attempts: int = Field(default=12, ge=1, le=100)
    outbox_max_backoff_seconds: float = Field(default=30, gt=0, le=3600)
    outbox_first_retry_seconds: float = Field(default=10, ge=0, le=600)


class AuthSettings(_Settings):
    shop_jwt_secret: SecretStr = Field(min_length=32)


class PeerSettings(_Settings):
    """Where this function finds the functions it calls over HTTP."""

    peer_timeout_seconds: float = Field(default=2.0, gt=0, le=10)


class EventSettings(_Settings):
    # Injected by a Knative SinkBinding; unset means events stay in the outbox until a sink appears.
    k_sink: str | None = None


class ServerSettings(_Settings):
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    k_service: str | None = None


S = TypeVar("S", bound=_Settings)


@lru_cache(maxsize=None)
def settings(kind: type[S]) -> S:
    """The validated settings of one concern, read from the environment once per process."""
    try:
        return kind()
    except ValidationError as error:
        names = ", ".join(str(e["loc"][0]).upper() for e in error.errors())
        raise ServiceUnavailable(f"This function is misconfigured: check {names}") from error


class NotifySettings(_Settings):
    notify_backend: Literal["log", "aws"] = "log"
    notify_email_from: str = Field(default="shop@example.com", pattern=r"^[^@\s]+@[^@\s]+$")
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
