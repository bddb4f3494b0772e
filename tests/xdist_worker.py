"""A pytest plugin (loaded by `-p` from pyproject's addopts) for each pytest-xdist worker of `make test`:
- it dies with the pytest process that started it, however that one dies: otherwise a worker whose parent was
  SIGKILLed finishes its test alone, its shop's functions holding their ports, until it next reads from its parent;
- it picks ports from a slice of its own (local.processes.PORT_RANGE): two workers never choose the same free port
  in the instant between choosing it and a server binding it.
"""

from __future__ import annotations

import os

from local.processes import LOWEST_PORT, PORT_RANGE, die_with_parent, ephemeral_ports


def pytest_configure(config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    die_with_parent()
    os.environ[PORT_RANGE] = port_slice(int(worker.removeprefix("gw")),
                                        int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def port_slice(index: int, count: int) -> str:
    """Worker `index`'s share of the ports below the ephemeral range, as PORT_RANGE spells it."""
    top = ephemeral_ports().start if ephemeral_ports().start > LOWEST_PORT + 1000 * count else 65536
    size = (top - LOWEST_PORT) // count
    return f"{LOWEST_PORT + index * size}-{LOWEST_PORT + (index + 1) * size - 1}"
