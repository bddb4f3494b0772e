"""Which processes are ours: a pid file with start times, and what /proc says about a pid or a port.

A pid alone names a process only while it lives: this machine hands pids out again (pid_max is often 32768).
A pid together with its start time (field 22 of /proc/<pid>/stat, in clock ticks since boot) and the boot id
names one process for ever, so a later run can tell a process it started from a stranger that got the same pid.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Recorded:
    """One process a run started: what it was for, its pid and its start time."""

    name: str
    pid: int
    start_time: int

    def is_alive(self) -> bool:
        """The very process recorded still runs (not a later process with the same pid, not a zombie)."""
        return start_time(self.pid) == self.start_time

    def holds_pid_as_stranger(self) -> bool:
        """The pid is in use again, by another process."""
        current = start_time(self.pid)
        return current is not None and current != self.start_time


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (the command name in field 2 may hold spaces and parentheses)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """The start time of a live process, or None when no process (or only a zombie) has this pid."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, their children...), found from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = parent_pid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop()
        found.append(child)
        queue += children.get(child, [])
    return found


def listeners(port: int) -> list[int]:
    """The pids holding a listening TCP socket on `port` (any address), through the socket inodes in /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    holders = set()
    if not inodes:
        return []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for descriptor in (entry / "fd").iterdir():
                if os.readlink(descriptor) in inodes:
                    holders.add(int(entry.name))
                    break
        except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
            continue
    return sorted(holders)


def boot_id() -> str:
    return BOOT_ID.read_text().strip()


class PidFile:
    """The processes one run of `make up` started, kept on disk while they run; safe to use from several threads."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[int, Recorded] = {}

    def add(self, name: str, pid: int) -> None:
        started = start_time(pid)
        if started is None:
            return  # already gone: nothing to find later
        with self._lock:
            self._entries[pid] = Recorded(name, pid, started)
            self._write()

    def discard(self, pid: int) -> None:
        with self._lock:
            if self._entries.pop(pid, None) is not None:
                self._write()

    def discard_name(self, name: str) -> None:
        with self._lock:
            found = [pid for pid, entry in self._entries.items() if entry.name == name]
            for pid in found:
                del self._entries[pid]
            if found:
                self._write()

    def remove(self) -> None:
        with self._lock:
            self._entries.clear()
            self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps({"boot_id": boot_id(),
                                       "processes": [asdict(entry) for entry in self._entries.values()]}, indent=1))
        os.replace(partial, self.path)


def read(path: Path) -> list[Recorded]:
    """What a pid file records; nothing when there is none, it cannot be read, or it was written before a reboot."""
    try:
        content = json.loads(path.read_text())
        if content["boot_id"] != boot_id():
            return []
        return [Recorded(**entry) for entry in content["processes"]]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return []


def terminate(processes: list[Recorded], grace: float = 10.0) -> list[Recorded]:
    """SIGTERM each recorded process that is still the one recorded (its whole group when it leads one), SIGKILL
    what is left after `grace` seconds; returns the processes that were stopped. A recycled pid is never signalled."""
    alive = [process for process in processes if process.is_alive()]
    for process in alive:
        _signal(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(process.is_alive() for process in alive):
        time.sleep(0.05)
    for process in alive:
        _signal(process, signal.SIGKILL)
    return alive


def _signal(process: Recorded, signum: int) -> None:
    """Signal a recorded process (and the group it leads), checking its start time just before."""
    if not process.is_alive():
        return
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signum)
        else:
            os.kill(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
