"""Test-only fault injection: stop or stall this process at a named step, to reproduce a crash there.

Inert unless SHOP_TEST_FAULTS is set (never in a deployment): `step=crash` kills the process with SIGKILL at that
step, `step=sleep:3` stalls it 3 s; several are separated by commas. With SHOP_TEST_FAULTS_ONCE=<dir>, each fault
fires once per directory (an exclusively created marker file), so the restarted process gets past it.
"""

from __future__ import annotations

import asyncio
import os
import signal
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _faults() -> dict[str, str]:
    spec = os.environ.get("SHOP_TEST_FAULTS", "")
    return dict(item.split("=", 1) for item in spec.split(",") if "=" in item)


async def fault_point(step: str) -> None:
    """A named step of a multi-step operation; a test may make the process die or stall here."""
    if not _faults():  # the common case: one dict lookup of a cached empty mapping
        return
    action = _faults().get(step)
    if action is None or not _first_time(step):
        return
    if action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("sleep:"):
        await asyncio.sleep(float(action.split(":", 1)[1]))


def _first_time(step: str) -> bool:
    once = os.environ.get("SHOP_TEST_FAULTS_ONCE")
    if not once:
        return True
    try:
        Path(once, step).open("x").close()
    except FileExistsError:
        return False
    return True
