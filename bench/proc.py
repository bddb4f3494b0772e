"""CPU accounting from /proc: what a function's process tree really used, independent of its own metrics."""

from __future__ import annotations

import os
from pathlib import Path


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants, every thread, in nanoseconds' resolution.

    /proc/<pid>/task/<tid>/schedstat counts each thread's time on a CPU in nanoseconds, where /proc/<pid>/stat
    counts clock ticks (10 ms: a 60 µs request is a fraction of one tick). A thread that has ended is no longer
    listed; the servers measured keep their threads (event loop, database pool, metrics endpoint).
    """
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0]) / 1e9
            children = (task / "children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended while we looked
        for child in children:
            total += tree_cpu_seconds(int(child))
    return total
