"""The scaling metric as the autoscaler sees it: concurrency averaged over each second, then over a window.

Knative's queue-proxies and activator report the average concurrency of each second; the autoscaler keeps them
in 1-second buckets and averages the buckets of a window (pkg/autoscaler/aggregation/bucketing.go). Here the
gateway sees every request come and go, so each second's average is exact: the time-weighted level.
"""

from __future__ import annotations

from collections import deque

from bench.sim import kpa


class Meter:
    """The time-weighted average of a level (requests in flight or held) over each closed interval."""

    def __init__(self, now: float):
        self.level = 0
        self._since = self._opened = now
        self._area = 0.0

    def change(self, delta: int, now: float) -> None:
        self._area += self.level * (now - self._since)
        self._since = now
        self.level += delta

    def close(self, now: float) -> float:
        """The average since the last close, and start the next interval."""
        area, length = self._area + self.level * (now - self._since), now - self._opened
        self._area, self._since, self._opened = 0.0, now, now
        return area / length if length > 0 else float(self.level)


class Window:
    """Upstream's TimedFloat64Buckets over 1-second buckets: WindowAverage divides by the buckets written since the
    first write of the current run (a gap of a whole window starts a new run), so a fresh series is not diluted."""

    def __init__(self, seconds: int):
        self.seconds = seconds
        self._buckets: deque[tuple[int, float]] = deque()
        self._first: int | None = None
        self._last: int | None = None

    def record(self, second: int, value: float) -> None:
        if self._last is None or second - self._last >= self.seconds:
            self._first = second
            self._buckets.clear()
        self._buckets.append((second, value))
        self._last = second
        while self._buckets and self._buckets[0][0] <= second - self.seconds:
            self._buckets.popleft()

    def average(self, second: int) -> float | None:
        """The window's average at `second`; None before anything was recorded (upstream: no data)."""
        if self._last is None:
            return None
        gap = second - self._last
        if gap >= self.seconds:
            return 0.0
        total = sum(value for at, value in self._buckets if at > second - self.seconds)
        return kpa.window_average(total, min(self._last - self._first + 1, self.seconds - gap))

    def recent(self, second: int) -> bool:
        """Something was recorded within the last window (upstream stops deciding otherwise)."""
        return self._last is not None and second - self._last <= self.seconds
