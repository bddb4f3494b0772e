"""One function under the local activator: its replicas, the requests it holds, and one KPA decision per tick.

Requests go to the ready replica with the fewest in flight, never past containerConcurrency (queue-proxy's hard
limit); the rest wait here, first come first served, up to the buffer: past it, or after waiting too long, 503
with Retry-After. The concurrency the autoscaler sees is what Knative's sees: requests in flight on the replicas
plus those held here, averaged per second.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from bench.sim import kpa
from bench.sim.config import ServiceConfig
from local.scaling.replicas import DRAINING, READY, STARTING, Replica
from local.scaling.settings import ScalingSettings
from local.scaling.windows import Meter, Window
from shared.errors import ServiceUnavailable
from shared.routes import Route


class Overloaded(ServiceUnavailable):
    """No replica can take the request now: the buffer is full, or it waited as long as it may."""


class Revision:
    def __init__(self, route: Route, config: ServiceConfig, settings: ScalingSettings, now: float):
        self.route, self.config, self.settings = route, config, settings
        self.spec = config.decider_spec()
        self.replicas: list[Replica] = []
        self.waiting: deque[asyncio.Future] = deque()
        self.meter = Meter(now)
        self.stable, self.panic = Window(int(config.stable_window)), Window(int(config.panic_window))
        self.state = kpa.DeciderState()
        self.desired = self.wanted = config.min_scale
        self.stable_value: float | None = None
        self.panic_value: float | None = None
        self.active_since: float | None = None
        self.zero_since: float | None = None
        self.cold_starts = 0
        self.cold_start_seconds = 0.0  # summed over the replicas that became ready
        self.became_ready = 0
        self.served = 0
        self.served_seconds = 0.0
        self.rejected = 0
        self.crashes = 0
        self.held_by_cap = 0
        self.capped = False  # the global cap holds back replicas this function wants
        self.exits_in_a_row = 0
        self.next_start_at = 0.0  # monotonic; a crashed replica's successor waits for it (CrashLoopBackOff)

    @property
    def name(self) -> str:
        return self.route.name

    def live(self) -> list[Replica]:
        """Replicas that count as the revision's pods: ready or starting (not the ones draining)."""
        return [replica for replica in self.replicas if replica.state in (STARTING, READY)]

    def count(self, state: str) -> int:
        return sum(1 for replica in self.replicas if replica.state == state)

    # Requests.

    async def acquire(self, now: float) -> Replica:
        """A replica with room for one more request, waiting for one when none has room."""
        replica = self._room()
        if replica is not None and not self.waiting:
            self._assign(replica)
            self.meter.change(+1, now)
            return replica
        if len(self.waiting) >= self.settings.buffer:
            self.rejected += 1
            raise Overloaded(f"The function {self.name} already holds {len(self.waiting)} requests waiting for a "
                             "replica; try again shortly")
        held = asyncio.get_running_loop().create_future()
        self.waiting.append(held)
        self.meter.change(+1, now)
        try:
            return await asyncio.wait_for(asyncio.shield(held), self.settings.wait_seconds)
        except (TimeoutError, asyncio.CancelledError) as stopped:
            if held.done() and not held.cancelled():
                self.release(held.result(), 0.0, time.monotonic(), count=False)
            else:
                held.cancel()
                self.meter.change(-1, time.monotonic())
            if isinstance(stopped, TimeoutError):
                self.rejected += 1
                raise Overloaded(f"No replica of {self.name} had room within {self.settings.wait_seconds:g}s",
                                 retry_after=5) from None
            raise

    def release(self, replica: Replica, seconds: float, now: float, count: bool = True) -> None:
        replica.in_flight -= 1
        if replica.in_flight == 0:
            replica.idle.set()
        self.meter.change(-1, now)
        if count:
            self.served += 1
            self.served_seconds += seconds
        self.dispatch()

    def dispatch(self) -> None:
        """Hand held requests, oldest first, to replicas with room."""
        while self.waiting:
            if self.waiting[0].done():  # gave up waiting
                self.waiting.popleft()
                continue
            replica = self._room()
            if replica is None:
                return
            self._assign(replica)
            self.waiting.popleft().set_result(replica)

    def _room(self) -> Replica | None:
        limit = self.config.container_concurrency
        candidates = [replica for replica in self.replicas
                      if replica.state == READY and (not limit or replica.in_flight < limit)]
        return min(candidates, key=lambda replica: replica.in_flight, default=None)

    @staticmethod
    def _assign(replica: Replica) -> None:
        replica.in_flight += 1
        replica.idle.clear()

    # Decisions.

    def record(self, second: int, value: float) -> None:
        """One second's average concurrency; kept while the revision has pods or demand, as upstream scrapes."""
        if self.replicas or value > 0:
            self.stable.record(second, value)
            self.panic.record(second, value)

    def decide(self, now: float, second: int) -> bool:
        """One tick of the KPA (bench/sim/kpa.py); True when it changed what runs."""
        if not self.stable.recent(second):
            return False
        self.stable_value, self.panic_value = self.stable.average(second), self.panic.average(second)
        result, self.state = kpa.scale(now, self.stable_value, self.panic_value, self.count(READY), self.spec,
                                       self.state)
        if not result.valid:
            return False
        before = (self.desired, self.wanted)
        self.desired = self.config.bounded(result.desired_pods)
        self.wanted, self.zero_since = kpa.applied(
            self.desired, len(self.live()), now, self.active_since, self.zero_since, self.config.stable_window,
            max(self.config.scale_to_zero_grace, self.config.pod_retention))
        return (self.desired, self.wanted) != before

    def poke(self, now: float) -> None:
        """A request found no pod: decide at once on concurrency 1, as the activator makes the autoscaler do."""
        result, self.state = kpa.scale(now, 1.0, 1.0, 0, self.spec, self.state)
        self.desired = self.wanted = self.config.bounded(max(1, result.desired_pods))
        self.zero_since = None

    def ready_now(self, replica: Replica, now: float) -> None:
        replica.state = READY
        replica.ready_at = time.monotonic()
        self.became_ready += 1
        self.cold_start_seconds += replica.ready_at - replica.spawned_at
        if self.count(READY) == 1:
            self.active_since = now
        self.dispatch()

    def gone(self, replica: Replica) -> None:
        if replica in self.replicas:
            self.replicas.remove(replica)
        if not self.live():
            self.active_since = None
            if self.wanted == 0:
                self.zero_since = None

    def public(self) -> dict:
        return {"ready": self.count(READY), "starting": self.count(STARTING), "draining": self.count(DRAINING),
                "desired": self.desired, "wanted": self.wanted, "panic": self.state.panicking,
                "in_flight": sum(replica.in_flight for replica in self.replicas), "waiting": len(self.waiting),
                "stable_concurrency": self.stable_value, "panic_concurrency": self.panic_value,
                "cold_starts": self.cold_starts, "cold_start_seconds_total": round(self.cold_start_seconds, 3),
                "became_ready": self.became_ready, "served": self.served,
                "served_seconds_total": round(self.served_seconds, 3), "rejected": self.rejected,
                "crashes": self.crashes, "held_by_cap": self.held_by_cap, "replicas": [replica.public() for replica in self.replicas]}
