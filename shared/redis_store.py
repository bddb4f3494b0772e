"""One redis.asyncio client per process, created on first use inside the running event loop.

With REDIS_CLUSTER=1 it is a RedisCluster client: REDIS_URL names one startup node, and every command or script
must touch keys of a single hash slot (keys that share a `{tag}`).
"""

from __future__ import annotations

import time
from functools import lru_cache

from prometheus_client import Histogram
from redis.asyncio import Redis, RedisCluster
from redis.backoff import ExponentialBackoff
from redis.exceptions import ClusterDownError, InvalidResponse, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from shared.errors import register_unavailable
from shared.loop_local import per_event_loop
from shared.settings import RedisSettings, settings

# RedisClusterException: no startup node answers, or the slots are not all served. (redis-py also raises it for a
# command whose keys span slots: a bug that tests/stores/test_cart_cluster.py would catch, not an outage.)
# InvalidResponse: what answers at REDIS_URL does not speak Redis (a misconfigured address): no usable store either.
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ClusterDownError, RedisClusterException, InvalidResponse)
register_unavailable(*UNAVAILABLE)

REDIS_LATENCY = Histogram("shop_redis_operation_duration_seconds", "Redis round trips, by operation", ["operation"],
                          buckets=(0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1))


def _new_client() -> Redis | RedisCluster:
    """The shared client; one quick retry, then 503 — never a hang past the configured timeout."""
    config = settings(RedisSettings)
    return (RedisCluster if config.redis_cluster else Redis).from_url(
        config.redis_url,
        socket_connect_timeout=config.redis_timeout_seconds / 2,
        socket_timeout=config.redis_timeout_seconds,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        decode_responses=True,
        health_check_interval=30,
    )


redis = per_event_loop(_new_client)


def key(*parts: str) -> str:
    """A key under this deployment's prefix (tests use a fresh prefix per session)."""
    return settings(RedisSettings).redis_key_prefix + ":".join(parts)


class timed:  # noqa: N801 - used as a function: `with timed("get"):`
    """Observes how long the block took in REDIS_LATENCY under `operation` (a plain class: a generator-based
    context manager and a label lookup per round trip cost more than the observation)."""

    __slots__ = ("_histogram", "_started")

    def __init__(self, operation: str) -> None:
        self._histogram = _latency(operation)

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc_info) -> None:
        self._histogram.observe(time.perf_counter() - self._started)


@lru_cache(maxsize=None)
def _latency(operation: str):
    return REDIS_LATENCY.labels(operation)
