"""`make bench`: three benchmarks, each printed as ratios measured in this same run (never asserted in tests).

1. Cold start: spawn -> first answer of every endpoint function, median of RUNS, against a functions-framework
   hello-world started the same way.
2. Warm cost: CPU-microseconds per request (the function's whole process tree, from /proc) for
   GET /products/{id}, GET /cart/{user} and POST /orders, against the floor: the hello-world's CPU per request
   plus the raw store round trips the endpoint needs, done directly with the driver.
3. Versus the seed design: GET /products/{id} as our function and as FastAPI + uvicorn on the same MongoDB.

BENCH_RUNS (5), BENCH_REQUESTS (1000) and BENCH_CONCURRENCY (8) tune it. Results: bench/results/bench.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import httpx

from bench import catalog
from bench.proc import tree_cpu_seconds
from local.config import local_setting
from local.processes import ROOT, free_port, spawn, start_function, stop, wait_for_port
from local.run import LocalShop
from local.stores import delete_keys, drop_database, ensure_postgres, ensure_redis, start_mongo
from shared.auth import issue_token
from shared.postgres import connect
from shared.routes import ROUTES, Route

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "1000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
RESULTS = ROOT / "bench" / "results"
HELLO = Route("bench-hello", "GET", "/", "bench/hello.py", "hello", "hello world")
SECRET = "bench-secret-" + uuid.uuid4().hex


@contextmanager
def stores():
    """Fresh stores for this run: a SecantusDB in memory, a new PostgreSQL database, a new Redis prefix."""
    run_id = uuid.uuid4().hex[:8]
    mongo_port = free_port()
    mongo = start_mongo(mongo_port, ":memory:")
    database_url = local_setting("DATABASE_URL").rsplit("/", 1)[0] + f"/bench_{run_id}"
    ensure_postgres(database_url)
    ensure_redis(local_setting("REDIS_URL"))
    try:
        yield {"MONGODB_URL": f"mongodb://127.0.0.1:{mongo_port}", "MONGODB_DATABASE": f"bench_{run_id}",
               "DATABASE_URL": database_url, "REDIS_URL": local_setting("REDIS_URL"),
               "REDIS_KEY_PREFIX": f"bench:{run_id}:", "SHOP_JWT_SECRET": SECRET, "LOG_LEVEL": "WARNING"}
    finally:
        stop([mongo])
        drop_database(database_url)
        delete_keys(local_setting("REDIS_URL"), f"bench:{run_id}:*")


def probe_path(route: Route) -> str:
    return (route.path or "/").replace("{", "").replace("}", "")


def first_answer_seconds(route: Route, settings: dict) -> float:
    port = free_port()
    started = time.perf_counter()
    running = start_function(route, port, None, settings, subprocess.DEVNULL)
    try:
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}{probe_path(route)}", timeout=5)
                return time.perf_counter() - started
            except httpx.TransportError:
                if running.process.poll() is not None:
                    raise RuntimeError(f"{route.name} exited while starting") from None
                time.sleep(0.005)
    finally:
        stop([running.process])


def cold_start(settings: dict) -> list[dict]:
    hello = statistics.median(first_answer_seconds(HELLO, settings) for _ in range(RUNS))
    rows = [{"function": HELLO.name, "median_ms": round(hello * 1000), "ratio": 1.0}]
    for route in ROUTES:
        median = statistics.median(first_answer_seconds(route, settings) for _ in range(RUNS))
        rows.append({"function": route.name, "median_ms": round(median * 1000), "ratio": round(median / hello, 2)})
    return rows


def cpu_per_request(pid: int, send, count: int) -> float:
    before = tree_cpu_seconds(pid)
    send(count)
    return (tree_cpu_seconds(pid) - before) / count


def driver_floor(settings: dict, product_id: str, cart_key: str, hello_url: str) -> dict[str, float]:
    """Client-side CPU of the raw store round trips, done directly with each driver in this process."""
    import pg8000.native
    import redis
    from bson import ObjectId
    from pymongo import MongoClient


    def timed(work, count=REQUESTS) -> float:
        work()  # connect and warm
        started = time.process_time()
        for _ in range(count):
            work()
        return (time.process_time() - started) / count

    mongo = MongoClient(settings["MONGODB_URL"])[settings["MONGODB_DATABASE"]]["products"]
    cache = redis.Redis.from_url(settings["REDIS_URL"])
    database = connect(settings["DATABASE_URL"], timeout=5)
    assert isinstance(database, pg8000.native.Connection)
    floors = {
        "mongo find_one": timed(lambda: mongo.find_one({"_id": ObjectId(product_id)})),
        "redis HGETALL": timed(lambda: cache.hgetall(cart_key)),
        "postgres round trip": timed(lambda: database.run("SELECT 1")),
        "http call": _async_http_floor(hello_url),
    }
    database.close()
    return floors


def _async_http_floor(url: str) -> float:
    """Client-side CPU of one call to another function with httpx's AsyncClient, alone on an event loop: an
    async function cannot call its peers with less (the sync client would block its loop)."""
    async def calls() -> float:
        async with httpx.AsyncClient(base_url=url) as peer:
            await peer.get("/")
            started = time.process_time()
            for _ in range(REQUESTS):
                await peer.get("/")
            return (time.process_time() - started) / REQUESTS

    return asyncio.run(calls())


# Round trips per request, counted from the code. An order: 4 PostgreSQL statements (claim the key with the
# pending order; the processor's charge; paid + lines + payment + outbox + key answer; the event marked sent)
# and 3 calls to other functions (reserve, confirm, publish the event).
POSTGRES_TRIPS_PER_ORDER = 4
HTTP_CALLS_PER_ORDER = 3


def warm_cost(settings: dict, mix: list[str]) -> tuple[list[dict], dict]:
    shop = LocalShop.on_free_ports(settings, log_dir=RESULTS / "bench-logs")
    hello_port = free_port()
    hello = start_function(HELLO, hello_port, None, settings, subprocess.DEVNULL)
    try:
        shop.start()
        wait_for_port(hello_port, hello.process)
        admin = {"Authorization": f"Bearer {issue_token('bench', 'admin', secret=SECRET)}"}
        user = "bench-user"
        customer = {"Authorization": f"Bearer {issue_token(user, 'customer', secret=SECRET)}"}
        with httpx.Client(base_url=shop.url, timeout=30) as client:
            product = client.post("/products", headers=admin, json={
                "sku": "BENCH-1", "name": "Bench Mug", "brand": "Bench", "stock_quantity": 1_000_000,
                "price": {"amount": "9.90", "currency": "EUR"}}).json()
            client.post(f"/cart/{user}/items", headers=customer, json={"product_sku": "BENCH-1", "quantity": 1})
            order_body = {"user_id": user, "items": [{"product_sku": "BENCH-1", "quantity": 1}],
                          "shipping_address": {"street": "1 Bench St", "city": "Lyon", "postal_code": "69001",
                                               "country": "FR"},
                          "payment": {"card_number": "4242424242424242", "expiry": "12/39", "cvv": "123"}}

            def get_product(count):  # the Zipf mix of catalog.product_mix: cache hits and misses both counted
                for path in mix[:count]:
                    assert client.get(path).status_code == 200

            def get_cart(count):
                for _ in range(count):
                    assert client.get(f"/cart/{user}", headers=customer).status_code == 200

            def create_order(count):
                for _ in range(count):
                    response = client.post("/orders", json=order_body,
                                           headers={**customer, "Idempotency-Key": uuid.uuid4().hex})
                    assert response.status_code == 201, response.text

            with httpx.Client(base_url=f"http://127.0.0.1:{hello_port}", timeout=30) as direct:
                def say_hello(count):
                    for _ in range(count):
                        assert direct.get("/").status_code == 200
                for send in (say_hello, get_product, get_cart, create_order):
                    send(20)  # warm up clients, pools and indexes
                hello_cpu = cpu_per_request(hello.process.pid, say_hello, REQUESTS)
            floors = driver_floor(settings, product["id"], f"{settings['REDIS_KEY_PREFIX']}cart:{user}",
                                  f"http://127.0.0.1:{hello_port}")
            orders = max(100, REQUESTS // 5)
            cases = [
                ("GET /products/{id}", "catalog-get-product", get_product, REQUESTS, floors["mongo find_one"]),
                ("GET /cart/{user}", "cart-get-cart", get_cart, REQUESTS, floors["redis HGETALL"]),
                ("POST /orders", "orders-create-order", create_order, orders,
                 POSTGRES_TRIPS_PER_ORDER * floors["postgres round trip"] + HTTP_CALLS_PER_ORDER * floors["http call"]),
            ]
            rows = [{"endpoint": "hello world", "requests": REQUESTS, "cpu_us": round(hello_cpu * 1e6),
                     "floor_us": round(hello_cpu * 1e6), "ratio": 1.0}]
            for label, name, send, count, store_floor in cases:
                used = cpu_per_request(shop.functions[name].process.pid, send, count)
                floor = hello_cpu + store_floor
                rows.append({"endpoint": label, "requests": count, "cpu_us": round(used * 1e6),
                             "floor_us": round(floor * 1e6), "ratio": round(used / floor, 2)})
            rows += catalog.list_and_search_cost(settings, hello_cpu, max(50, REQUESTS // 5))
        return rows, {"product_id": product["id"], "driver_floor_us": {k: round(v * 1e6, 1) for k, v in floors.items()}}
    finally:
        stop([hello.process])
        shop.stop()


def versus_seed(settings: dict, mix: list[str]) -> list[dict]:
    """GET /products/{id} over the same product mix: ours with its cache, ours with it off, the seed's stack."""
    route = next(r for r in ROUTES if r.name == "catalog-get-product")
    rows = []
    for label, ttl in (("functions-framework (ours)", None), ("functions-framework (ours, cache off)", "0")):
        port = free_port()
        ours = start_function(route, port, None, {**settings, **({"PRODUCT_CACHE_TTL_SECONDS": ttl} if ttl else {})},
                              subprocess.DEVNULL)
        try:
            rows.append({"implementation": label, **catalog.measure(ours.process, port, mix, CONCURRENCY)})
        finally:
            stop([ours.process])
    seed_port = free_port()
    env = {**os.environ, **settings, "PYTHONPATH": str(ROOT)}
    seed = spawn([sys.executable, "-m", "uvicorn", "bench.seed_fastapi:app", "--host", "127.0.0.1",
                  "--port", str(seed_port), "--log-level", "warning", "--no-access-log"], env, subprocess.DEVNULL)
    try:
        rows.append({"implementation": "FastAPI + uvicorn (seed)", **catalog.measure(seed, seed_port, mix, CONCURRENCY)})
    finally:
        stop([seed])
    for row in rows:
        row["cpu_vs_seed"] = round(row["cpu_us_per_request"] / rows[-1]["cpu_us_per_request"], 2)
        row["throughput_vs_seed"] = round(row["throughput_rps"] / rows[-1]["throughput_rps"], 2)
    return rows


def table(title: str, rows: list[dict]) -> str:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(row[c])) for row in rows)) for c in columns}
    lines = [title, "  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(row[c]).ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(lines)


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with stores() as settings:
        cold = cold_start(settings)
        print(table(f"\nCold start: spawn -> first answer, median of {RUNS} (ratio to hello world)", cold), flush=True)
        mix = catalog.product_mix(catalog.seed_products(settings["MONGODB_URL"], settings["MONGODB_DATABASE"],
                                                        catalog.MIX_PRODUCTS), REQUESTS)
        warm, extra = warm_cost(settings, mix)
        print(table("\nWarm cost: CPU microseconds per request (ratio to hello + raw store round trips)", warm),
              flush=True)
        seed = versus_seed(settings, mix)
        print(table(f"\nGET /products/{{id}}: ours vs the seed's FastAPI + uvicorn, the same {REQUESTS} reads of "
                    f"{catalog.MIX_PRODUCTS} products (Zipf mix), concurrency {CONCURRENCY}", seed), flush=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "runs": RUNS, "requests": REQUESTS, "concurrency": CONCURRENCY,
        "cold_start": cold, "warm_cost": warm, "warm_cost_floors": extra["driver_floor_us"], "versus_seed": seed}
    (RESULTS / "bench.json").write_text(json.dumps(result, indent=2))
    print(f"\nwritten: {RESULTS / 'bench.json'}")


if __name__ == "__main__":
    main()
