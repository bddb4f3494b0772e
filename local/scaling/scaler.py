"""Every function of the local shop under the activator and the autoscaler.

Once a second each function's concurrency of that second is recorded; every 2 s (kpa.TICK_SECONDS) each function
gets one KPA decision and the replicas it should run are started or stopped. A request that finds no replica
pokes the autoscaler at once. A supervisor pass every 0.1 s replaces crashed replicas (after local.shop's
CrashLoopBackOff delay) and starts what a full global cap held back. The caps are hard: a replica is started only
while fewer than SCALING_MAX_REPLICAS_TOTAL run in all; requests wait for room, they never oversubscribe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from bench.sim import kpa
from local.pids import PidFile
from local.processes import sweep
from local.scaling import replicas
from local.scaling.replicas import DRAINING, READY, STARTING, STOPPED, Replica
from local.scaling.revision import Revision
from local.scaling.settings import ScalingSettings, public_config, service_config
from local.shop import Backoff
from shared.logs import logger
from shared.routes import Route

SUPERVISE_SECONDS = 0.1
CLOSE_DRAIN_SECONDS = 5.0

log = logger("scaling")


class Scaler:
    def __init__(self, routes: list[Route] | tuple[Route, ...], settings: ScalingSettings | None = None,
                 log_dir: Path | None = None, pid_file: PidFile | None = None):
        self.settings = settings or ScalingSettings.from_environment()
        self.log_dir, self.pid_file = log_dir, pid_file
        self.backoff = Backoff()
        self._origin = time.monotonic()
        self.revisions = {route.name: Revision(route, service_config(route, self.settings), self.settings,
                                               self._origin) for route in routes}
        self._spawning: dict[str, int] = {name: 0 for name in self.revisions}
        self._tasks: set[asyncio.Task] = set()
        self._loops: list[asyncio.Task] = []
        self.registry = CollectorRegistry()
        self.registry.register(_Collector(self))

    def now(self) -> float:
        """Seconds since the autoscaler started: its ticks fall on the even ones."""
        return time.monotonic() - self._origin

    async def start(self) -> None:
        self._loops = [asyncio.create_task(self._tick_forever()), asyncio.create_task(self._supervise_forever())]
        for revision in self.revisions.values():
            self.reconcile(revision)  # min-scale replicas

    async def close(self) -> None:
        for task in self._loops + list(self._tasks):
            task.cancel()
        stopping = [replicas.terminate(replica, CLOSE_DRAIN_SECONDS, self.pid_file)
                    for revision in self.revisions.values() for replica in revision.replicas
                    if replica.state != STOPPED]
        await asyncio.gather(*stopping, return_exceptions=True)

    async def forward(self, name: str, send: Callable[[str], Awaitable]):
        """Send one request to a replica of `name` (`send(base_url)`), holding it until one has room."""
        revision = self.revisions[name]
        if not self.pods(revision):
            revision.poke(self.now())
            log.info(f"scaling {name}: a request at zero replicas; starting {revision.wanted}",
                     extra={"scaled": name, "desired": revision.desired, "replicas_wanted": revision.wanted})
            self.reconcile(revision)
        replica = await revision.acquire(time.monotonic())
        started = time.monotonic()
        try:
            return await send(replica.url)
        finally:
            revision.release(replica, time.monotonic() - started, time.monotonic())

    def pods(self, revision: Revision) -> int:
        """Ready or starting replicas, and those being spawned."""
        return len(revision.live()) + self._spawning[revision.name]

    def total(self) -> int:
        """Every replica process there is or is being spawned, draining ones included: what the global cap bounds."""
        return sum(self._spawning.values()) + sum(1 for revision in self.revisions.values()
                                                   for replica in revision.replicas if replica.state != STOPPED)

    def reconcile(self, revision: Revision) -> None:
        """Start or stop replicas until `revision.wanted` run, within the caps and the crash backoff."""
        live = revision.live()
        surplus = self.pods(revision) - revision.wanted
        if surplus > 0:
            newest_first = sorted((r for r in live if r.state == STARTING), key=lambda r: -r.spawned_at)
            least_busy = sorted((r for r in live if r.state == READY), key=lambda r: r.in_flight)
            for victim in (newest_first + least_busy)[:surplus]:
                self._retire(revision, victim)
        elif surplus < 0 and time.monotonic() >= revision.next_start_at:
            room = self.settings.max_replicas_total - self.total()
            if room < -surplus and revision.waiting and not revision.live():
                # Stopping replicas still count against the cap: start once they are gone, never past it.
                draining = sum(r.state == DRAINING for other in self.revisions.values() for r in other.replicas)
                self._make_room(-surplus - room - draining, revision)
            if room < -surplus and not revision.capped:
                revision.held_by_cap += 1  # counted once per time the cap starts holding this function back
                log.info(f"scaling {revision.name}: the global cap of {self.settings.max_replicas_total} replicas "
                         f"holds back {-surplus - max(0, room)} of the {revision.wanted} wanted; requests queue",
                         extra={"scaled": revision.name, "replicas_wanted": revision.wanted})
            revision.capped = room < -surplus
            for _ in range(min(-surplus, room)):
                self._spawning[revision.name] += 1
                revision.cold_starts += 1
                self._background(self._run(revision))

    def _make_room(self, needed: int, starved: Revision) -> int:
        """Retire idle replicas of functions the autoscaler already wants at zero (kept only for the scale-to-zero
        grace, or for a revision younger than a stable window) so that a function holding requests with no replica
        can start: in a cluster those pods would not hold its node; here the global cap would hold it for up to
        90 s. Returns how many were retired. (The model has no global cap: `make replay` says when it binds.)"""
        freed = 0
        for other in self.revisions.values() if needed > 0 else ():
            if other is starved or other.desired > 0 or other.waiting:
                continue
            for replica in [r for r in other.live() if r.state == READY and r.in_flight == 0]:
                if freed == needed:
                    return freed
                self._retire(other, replica)
                other.wanted = len(other.live())
                freed += 1
                log.info(f"scaling {other.name}: an idle replica at desired 0 gives way to {starved.name}, which "
                         "holds requests under the global cap", extra={"scaled": other.name})
        return freed

    # Replicas' lives.

    async def _run(self, revision: Revision) -> None:
        try:
            replica = await replicas.spawn(revision.route, self.log_dir, self.pid_file)
        except Exception:
            log.exception(f"scaling {revision.name}: could not start a replica")
            self._spawning[revision.name] -= 1
            self._crashed(revision, None, "could not be started")
            return
        self._spawning[revision.name] -= 1
        revision.replicas.append(replica)
        if await replicas.ready(replica, self.settings.start_timeout_seconds):
            revision.ready_now(replica, self.now())
            await asyncio.to_thread(replicas.record_workers, replica, self.pid_file)
        elif replica.state == STARTING:
            reason = "exited before listening" if replica.exited else \
                f"did not listen within {self.settings.start_timeout_seconds:g}s"
            self._crashed(revision, replica, reason)

    def _retire(self, revision: Revision, replica: Replica) -> None:
        replica.state = DRAINING  # no new request; the ones in flight finish
        self._background(self._stop(revision, replica))

    async def _stop(self, revision: Revision, replica: Replica) -> None:
        await replicas.terminate(replica, self.settings.drain_seconds, self.pid_file)
        revision.gone(replica)

    def _crashed(self, revision: Revision, replica: Replica | None, reason: str) -> None:
        if replica is not None:
            if replica.state == STOPPED or replica not in revision.replicas:
                return
            replica.state = STOPPED
            sweep(replica.running.process)  # a worker whose master died must not keep the port
            self._background(asyncio.to_thread(replica.running.process.wait))
            revision.gone(replica)
            if self.pid_file is not None:
                self.pid_file.discard(replica.pid)
        revision.crashes += 1
        revision.exits_in_a_row += 1
        delay = self.backoff.delay(revision.exits_in_a_row)
        revision.next_start_at = time.monotonic() + delay
        code = replica.running.process.returncode if replica is not None else None
        log.warning(f"scaling {revision.name}: a replica {reason} (exit code {code}); "
                    f"replacing it {f'in {delay:.1f}s' if delay else 'now'}",
                    extra={"scaled": revision.name, "exit_code": code, "exits_in_a_row": revision.exits_in_a_row})

    def _background(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # The loops.

    async def _tick_forever(self) -> None:
        second = 0
        while True:
            second += 1
            await asyncio.sleep(max(0.0, self._origin + second - time.monotonic()))
            moment = time.monotonic()
            for revision in self.revisions.values():
                revision.record(second - 1, revision.meter.close(moment))
            if second % kpa.TICK_SECONDS == 0:
                for revision in self.revisions.values():
                    self._decide(revision, second)

    def _decide(self, revision: Revision, second: int) -> None:
        panicking = revision.state.panicking
        changed = revision.decide(float(second), second - 1)
        if changed or panicking != revision.state.panicking:
            log.info(f"scaling {revision.name}: desired {revision.desired}, running {revision.wanted} "
                     f"(ready {revision.count(READY)}, stable {revision.stable_value}, panic {revision.panic_value}"
                     f"{', panicking' if revision.state.panicking else ''})",
                     extra={"scaled": revision.name, "desired": revision.desired, "replicas_wanted": revision.wanted,
                            "stable_concurrency": revision.stable_value, "panic_concurrency": revision.panic_value,
                            "panic": revision.state.panicking})
        self.reconcile(revision)

    async def _supervise_forever(self) -> None:
        while True:
            await asyncio.sleep(SUPERVISE_SECONDS)
            try:
                self._supervise()
            except Exception:  # a bug here must not end the supervision of every function
                log.exception("the scaling supervisor failed a round; it goes on")

    def _supervise(self) -> None:
        moment = time.monotonic()
        # Functions holding requests without a replica go first to whatever room the global cap has.
        for revision in sorted(self.revisions.values(), key=lambda r: not (r.waiting and not r.live())):
            for replica in list(revision.replicas):
                if replica.state in (STARTING, READY) and replica.exited:
                    self._crashed(revision, replica, "exited")
            if revision.exits_in_a_row and any(
                    replica.state == READY and moment - replica.ready_at >= self.backoff.reset_after
                    for replica in revision.replicas):
                revision.exits_in_a_row = 0
            self.reconcile(revision)

    # What it shows.

    def public(self) -> dict:
        return {"mode": "knative", "seconds": round(self.now(), 3), "tick_seconds": kpa.TICK_SECONDS,
                "max_replicas_total": self.settings.max_replicas_total, "replicas_total": self.total(),
                "buffer": self.settings.buffer,
                "functions": {name: {**public_config(revision.config), **revision.public()}
                              for name, revision in self.revisions.items()}}


class _Collector:
    """The same figures as /_local/scaling, read at scrape time."""

    GAUGES = {"ready": "Ready replicas", "desired": "Replicas the autoscaler wants", "starting": "Replicas starting",
              "draining": "Replicas finishing their requests before they stop",
              "in_flight": "Requests in flight on the replicas", "waiting": "Requests held by the activator",
              "panic": "1 while the autoscaler is in panic mode"}
    COUNTERS = {"cold_starts": "Replicas started", "held_by_cap": "Times the global cap held back a replica", "rejected": "Requests refused with 503 (buffer full, waited too "
                "long)", "crashes": "Replicas that exited on their own", "served": "Requests forwarded"}

    def __init__(self, scaler: Scaler):
        self.scaler = scaler

    def collect(self):
        functions = {name: revision.public() for name, revision in self.scaler.revisions.items()}
        for key, text in self.GAUGES.items():
            family = GaugeMetricFamily(f"local_scaling_{key}", text, labels=["function"])
            for name, values in functions.items():
                family.add_metric([name], float(values[key]))
            yield family
        for key, text in self.COUNTERS.items():
            family = CounterMetricFamily(f"local_scaling_{key}", text, labels=["function"])
            for name, values in functions.items():
                family.add_metric([name], float(values[key]))
            yield family
        yield GaugeMetricFamily("local_scaling_replicas_total", "Replica processes of every function",
                                value=float(self.scaler.total()))
        yield GaugeMetricFamily("local_scaling_max_replicas_total", "The global replica cap",
                                value=float(self.scaler.settings.max_replicas_total))
