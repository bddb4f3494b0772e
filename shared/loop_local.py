"""Clients that belong to an event loop: one per loop, created on first use inside it."""

from __future__ import annotations

import asyncio
from typing import Callable, TypeVar

T = TypeVar("T")


def per_event_loop(create: Callable[[], T]) -> Callable[[], T]:
    """An accessor that returns the running loop's instance, creating it with `create` the first time.

    An async client is bound to the loop that made it; a process serving one loop gets exactly one.
    """
    instances: dict[asyncio.AbstractEventLoop, T] = {}

    def get() -> T:
        loop = asyncio.get_running_loop()
        found = instances.get(loop)
        if found is None:
            found = instances[loop] = create()
        return found

    get.__doc__ = create.__doc__
    return get
