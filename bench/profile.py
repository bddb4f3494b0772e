"""`make profile FUNCTION=catalog-get-product`: a flame graph (SVG) of one function serving requests under load.

The function runs alone, as its image runs it (`functions-framework`, a gunicorn master and its uvicorn worker), on fresh stores that the migration step
prepared; a driver keeps PROFILE_CONCURRENCY (8) requests in flight while py-spy samples the process and any
child it has for PROFILE_SECONDS (20). Any GET route can be profiled: a `{product_id}` is a product made for the
run, a `{user_id}` the run's user (with their token), and every request carries an admin token. Written to
bench/results/profile-<function>.svg.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from bench.run import HELLO, RESULTS, TOKENS, stores
from local.processes import free_port, start_function, stop, wait_for_port
from local.token import issue_token
from shared.routes import ROUTES, Route

SECONDS = int(os.environ.get("PROFILE_SECONDS", "20"))
CONCURRENCY = int(os.environ.get("PROFILE_CONCURRENCY", "8"))
USER = "profile-user"


def profiled_route(name: str) -> Route:
    routes = {route.name: route for route in (*ROUTES, HELLO)}
    found = routes.get(name)
    if found is None or found.method != "GET":
        usable = ", ".join(route.name for route in routes.values() if route.method == "GET")
        raise SystemExit(f"make profile FUNCTION=… takes a GET function: {usable}")
    return found


def new_product(settings: dict, admin: dict) -> str:
    creator = next(route for route in ROUTES if route.name == "catalog-create-product")
    port = free_port()
    running = start_function(creator, port, None, settings, subprocess.DEVNULL)
    try:
        wait_for_port(port, running.process)
        return httpx.post(f"http://127.0.0.1:{port}/products", headers=admin, timeout=10, json={
            "sku": "PROFILE-1", "name": "Profile Mug", "brand": "Bench", "stock_quantity": 1000,
            "price": {"amount": "9.90", "currency": "EUR"}}).json()["id"]
    finally:
        stop([running.process])


async def drive(url: str, headers: dict, stopping: threading.Event) -> int:
    """Requests back to back from CONCURRENCY callers until `stopping`; returns how many were answered."""
    answered = 0
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        async def caller():
            nonlocal answered
            while not stopping.is_set():
                response = await client.get(url)
                if response.status_code >= 500:
                    raise RuntimeError(f"{url} answered {response.status_code}: {response.text}")
                answered += 1

        await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    return answered


def profile(route: Route, output: Path) -> int:
    with stores() as settings:
        admin = {"Authorization": f"Bearer {issue_token(USER, 'admin', settings=TOKENS)}"}
        path = route.path or "/"
        if "{product_id}" in path:
            path = path.replace("{product_id}", new_product(settings, admin))
        path = path.replace("{user_id}", USER)
        port = free_port()
        running = start_function(route, port, None, {**settings, "LOG_LEVEL": "INFO"}, subprocess.DEVNULL)
        stopping = threading.Event()
        answered: list[int] = []
        driver = threading.Thread(target=lambda: answered.append(
            asyncio.run(drive(f"http://127.0.0.1:{port}{path}", admin, stopping))))
        try:
            wait_for_port(port, running.process)
            driver.start()
            time.sleep(1)  # warm: clients connected, caches filled
            subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(running.process.pid),
                            "--subprocesses", "--duration", str(SECONDS), "--rate", "100", "--nonblocking", "--format", os.environ.get("PROFILE_FORMAT", "flamegraph"),
                            "--output", str(output)], check=True)
        finally:
            stopping.set()
            if driver.is_alive():
                driver.join()
            stop([running.process])
    return answered[0] if answered else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("function", help="a route name, e.g. catalog-get-product (or bench-hello)")
    route = profiled_route(parser.parse_args().function)
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / f"profile-{route.name}.svg"
    answered = profile(route, output)
    print(f"{route.name}: {answered} requests answered while sampling; flame graph: {output}")


if __name__ == "__main__":
    main()
