"""Each function imports only what its own route needs: cold start is paid per endpoint.

Each function module is loaded as functions-framework loads it, in a fresh interpreter, and the modules it brought in are
counted and named. No wall-clock budget (this machine is shared and noisy): a module count against the hello-world
function's, measured the same way in the same run, and modules a function must not import at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from shared.routes import ROUTES, Route

ROOT = Path(__file__).resolve().parents[2]
HELLO = "bench/hello.py"
LOAD = """
import json, sys
from functions_framework import _function_registry
module, spec = _function_registry.load_function_module(sys.argv[1])
spec.loader.exec_module(module)
print(json.dumps(sorted(name.split(".")[0] for name in sys.modules)))
print(len(sys.modules))
"""
# Whole modules per function: about 410 for hello (functions-framework, Flask, Starlette, cloudevents), 600-800
# for a function with its store driver, pydantic and the shared wrapper. Past this, look at what came in.
MAX_RATIO_TO_HELLO = 2.0
NEVER = {"boto3", "botocore", "moto", "numpy", "yaml", "locust", "fastapi", "pytest", "secantusdb", "bench", "local"}
DRIVERS = {"catalog": "pymongo", "cart": "redis", "orders": "pg8000", "notify": "pg8000"}


@lru_cache(maxsize=None)
def imported(source: str) -> tuple[frozenset[str], int]:
    result = subprocess.run([sys.executable, "-c", LOAD, source], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    names, count = result.stdout.splitlines()[-2:]
    return frozenset(json.loads(names)), int(count)


def domain(route: Route) -> str:
    return route.source.split("/")[1]


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_a_function_imports_only_its_own_store_and_what_it_calls(route):
    packages, count = imported(route.source)
    _, hello_count = imported(HELLO)

    other_drivers = set(DRIVERS.values()) - {DRIVERS[domain(route)]}
    assert DRIVERS[domain(route)] in packages
    assert not packages & other_drivers, f"{route.name} imports another domain's driver"
    assert not packages & NEVER
    if not route.calls and not route.publishes:
        assert "httpx" not in packages, f"{route.name} calls no other function but imports httpx"
    assert count <= MAX_RATIO_TO_HELLO * hello_count, f"{route.name}: {count} modules, hello {hello_count}"
