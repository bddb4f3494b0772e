"""Each function imports only what its own route needs: cold start is paid per endpoint.

Each function module is loaded as functions-framework loads it, in a fresh interpreter, and the modules it brought in are
counted and named. No wall-clock budget (this machine is shared and noisy): a module count against the hello-world
function's, measured the same way in the same run, and modules a function must not import at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from shared.routes import ROUTES, Route

ROOT = Path(__file__).resolve().parents[2]
HELLO = "bench/hello.py"
LOAD = """
import gc, json, sys
from functions_framework import _function_registry
module, spec = _function_registry.load_function_module(sys.argv[1])
spec.loader.exec_module(module)
loaded = [name for name, found in sys.modules.items() if found is not None]  # None: an import blocked on purpose
print(json.dumps(sorted(loaded)))
print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))
model = sys.modules.get("shared.model")
def built(kind):
    return [sub.__name__ for sub in kind.__subclasses__() if sub.__pydantic_complete__] + \
        [name for sub in kind.__subclasses__() for name in built(sub)]
print(json.dumps(built(model.Model) if model else []))
"""
# Whole modules per function: about 410 for hello (functions-framework, Flask, Starlette, cloudevents), 570-650
# for a function with its store driver, pydantic and the shared wrapper (740 before pydantic-settings, PyJWT and
# cryptography left the import). Past this, look at what came in.
MAX_RATIO_TO_HELLO = 1.6
NEVER = {"boto3", "botocore", "moto", "numpy", "yaml", "locust", "fastapi", "pytest", "secantusdb", "bench", "local"}
# Loaded on first use, never by the import: tokens are verified and signed on the request that carries or needs
# one (a public route's anonymous caller never loads them); settings are plain pydantic models; httpx's CLI and
# what it drags in (dev only) are blocked; email-validator loads on the first address checked (shared.fields.Email).
# (redis imports the bare `cryptography` package, to read its version.)
NOT_AT_IMPORT = ("jwt", "cryptography.hazmat", "cryptography.x509", "pydantic_settings", "dotenv", "rich", "pygments",
                 "email_validator")
DRIVERS = {"catalog": "pymongo", "cart": "redis", "orders": "pg8000", "notify": "pg8000"}


@dataclass(frozen=True)
class Imported:
    modules: frozenset[str]
    packages: frozenset[str]
    count: int
    collecting: bool  # garbage collection is on again once the function is imported
    frozen: int  # objects gc.freeze moved out of every later collection
    built_models: tuple[str, ...]  # shared.model.Model subclasses whose validator the import built


@lru_cache(maxsize=None)
def imported(source: str) -> Imported:
    """What importing `source` left behind, in a process started as functions-framework starts one to serve it."""
    result = subprocess.run([sys.executable, "-c", LOAD, source], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                                              "FUNCTION_TARGET": "serving"})
    assert result.returncode == 0, result.stderr
    names, state, built = result.stdout.splitlines()[-3:]
    modules = frozenset(json.loads(names))
    collecting, frozen = json.loads(state)
    return Imported(modules, frozenset(name.split(".")[0] for name in modules), len(modules), collecting, frozen,
                    tuple(json.loads(built)))


def domain(route: Route) -> str:
    return route.source.split("/")[1]


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_a_function_imports_only_its_own_store_and_what_it_calls(route):
    found, hello = imported(route.source), imported(HELLO)
    packages, count, hello_count = found.packages, found.count, hello.count

    other_drivers = set(DRIVERS.values()) - {DRIVERS[domain(route)]}
    assert DRIVERS[domain(route)] in packages
    assert not packages & other_drivers, f"{route.name} imports another domain's driver"
    assert not packages & NEVER
    if not route.calls and not route.publishes:
        assert "httpx" not in packages, f"{route.name} calls no other function but imports httpx"
    assert count <= MAX_RATIO_TO_HELLO * hello_count, f"{route.name}: {count} modules, hello {hello_count}"


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_no_function_loads_token_libraries_or_pydantic_settings_when_it_starts(route):
    early = sorted(name for name in imported(route.source).modules if name.startswith(NOT_AT_IMPORT))
    assert not early, f"{route.name} imports {early[:5]}"


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_a_serving_function_collects_garbage_again_once_imported_and_never_rescans_what_it_imported(route):
    found = imported(route.source)
    assert found.collecting
    assert found.frozen > 50_000, f"{route.name}: {found.frozen} objects frozen"


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_a_function_builds_no_model_while_it_imports_only_those_its_requests_use(route):
    assert imported(route.source).built_models == ()


def test_a_test_or_tool_importing_a_function_keeps_collecting_and_freezes_nothing():
    code = "import gc, functions.catalog.get_product; print(gc.isenabled(), gc.get_freeze_count())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})  # no FUNCTION_TARGET
    assert result.stdout.split() == ["True", "0"], result.stderr


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_a_library_floor_loads_no_code_of_ours_and_nothing_its_functions_do_not(route):
    """make bench divides each cold start by its store's floor (bench/floors): that is only what our code adds if
    everything the floor loads, the function loads too."""
    from bench.run import floor_of

    source = floor_of(route).source
    floor = imported(source)
    own_module = source.rsplit("/", 1)[1].removesuffix(".py")  # loaded under its file's stem
    libraries = {name for name in floor.modules - {own_module} if name.split(".")[0] != "bench"}
    assert not floor.packages & {"shared", "functions", "local"}
    assert floor.modules - libraries - {own_module} <= {"bench", "bench.floors", "bench.floors.answer"}
    assert not libraries - imported(route.source).modules
    assert floor.collecting and floor.frozen > 50_000


def test_a_serving_function_freezes_what_its_first_request_loaded_once(monkeypatch):
    from shared import startup

    freezes = []
    monkeypatch.setattr(startup.gc, "freeze", lambda: freezes.append("freeze"))
    monkeypatch.setattr(startup, "_answered", False)
    monkeypatch.delenv("FUNCTION_TARGET", raising=False)
    startup.answered()  # a test or tool answering in-process never freezes
    assert freezes == []

    monkeypatch.setenv("FUNCTION_TARGET", "serving")
    monkeypatch.setattr(startup, "_answered", False)
    startup.answered()
    startup.answered()  # only the first answer freezes
    assert freezes == ["freeze"]


def test_every_answer_of_an_endpoint_reaches_startup_answered(monkeypatch):
    import asyncio

    from starlette.requests import Request

    from functions.catalog.get_product import get_product
    from shared import startup

    answers = []
    monkeypatch.setattr(startup, "answered", lambda: answers.append("answered"))
    request = Request({"type": "http", "method": "GET", "path": "/no-such-path", "raw_path": b"/no-such-path",
                       "headers": [], "query_string": b""})

    response = asyncio.run(get_product(request))

    assert response.status_code == 404 and answers == ["answered"]
