"""The local gateway's rate limits: one token bucket per public route (its `rate_limit` in the route table).

A bucket is shared by every caller, as the Istio local rate limit generated from the same table
(local/deploy/ratelimit.py) is per route and per gateway replica. GATEWAY_RATE_LIMITS=off turns them off (the test
session, whose tests all go through one gateway).
"""

from __future__ import annotations

import math
import os
import time

from shared.errors import TooManyRequests
from shared.routes import RateLimit, Route


class TokenBucket:
    """`burst` tokens at most, refilled continuously at `per_second`; each request takes one. (The gateway is one
    event loop: no lock.)"""

    def __init__(self, limit: RateLimit, clock=time.monotonic):
        self.limit, self.clock = limit, clock
        self.tokens, self.updated = float(limit.burst), clock()

    def take(self) -> float:
        """0 when a token was taken; otherwise the seconds until one will be there."""
        now = self.clock()
        self.tokens = min(self.limit.burst, self.tokens + (now - self.updated) * self.limit.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.limit.per_second


class RouteLimits:
    def __init__(self, routes: list[Route], enabled: bool | None = None):
        if enabled is None:
            enabled = os.environ.get("GATEWAY_RATE_LIMITS", "on") != "off"
        self.buckets = {route.name: TokenBucket(route.rate_limit)
                        for route in routes if enabled and route.rate_limit is not None}

    def check(self, route: Route) -> None:
        """Raise 429 with Retry-After (whole seconds, at least 1) when `route` is over its rate."""
        bucket = self.buckets.get(route.name)
        wait = bucket.take() if bucket is not None else 0.0
        if wait:
            raise TooManyRequests(f"Too many requests to {route.method} {route.path}: at most "
                                  f"{route.rate_limit.per_second:g} a second (bursts of {route.rate_limit.burst})",
                                  retry_after=max(1, math.ceil(wait)))
