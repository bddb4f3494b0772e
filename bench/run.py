"""`make bench`: three benchmarks, each printed as ratios measured in this same run (never asserted in tests).

1. Cold start: spawn -> first successful answer that used the function's store (bench/probes.py: client creation,
   connection and schema check included), median of RUNS, against a functions-framework hello-world and the
   store's library floor (bench/floors: the fixed libraries alone) started the same way, side by side with it;
   each function starts while the rest of the shop runs warm, so peers answer.
2. Warm cost: CPU-microseconds per request (the function's whole process tree, from /proc) for
   GET /products/{id}, GET /cart/{user} and POST /orders, against the floor: the hello-world's CPU per request
   plus the raw store round trips the endpoint needs, done directly with the driver; in BENCH_WARM_ROUNDS rounds
   (hello, then each endpoint), each ratio against its own round's hello, the median printed with the range.
   The hello-world is also compared with a bare Starlette app on uvicorn (uvloop, httptools): the server's floor.
3. Latency: p50 and p99 at BENCH_CONCURRENCY requests in flight, straight to each function, for the same endpoints.
4. Versus the seed design: GET /products/{id} as our function and as FastAPI + uvicorn on the same MongoDB.

BENCH_RUNS (5), BENCH_REQUESTS (1000), BENCH_WARM_ROUNDS (3) and BENCH_CONCURRENCY (8) tune it. Results: bench/results/bench.json, and one
line per run appended to bench/results/history.jsonl (date, commit, machine) so regressions show.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench import catalog
from bench.probes import Fixtures, Probe, probe
from bench.proc import tree_cpu_seconds
from bench.runtime import use_image_environment
from local.config import local_setting
from local.migrate import run_step
from local.processes import ROOT, free_port, function_command, spawn, start_function, stop, wait_for_port
from local.run import LocalShop
from local.stores import delete_keys, drop_database, ensure_postgres, ensure_redis, start_mongo
from local.token import hs256_settings, issue_token
from shared.postgres import connect
from shared.routes import ROUTES, Route
from shared.routes import route as named_route

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "1000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
WARM_ROUNDS = int(os.environ.get("BENCH_WARM_ROUNDS", "3"))
RESULTS = ROOT / "bench" / "results"
HELLO = Route("bench-hello", "GET", "/", "bench/hello.py", "hello", "hello world")
TOKENS = hs256_settings({"bench-1": "bench-secret-" + uuid.uuid4().hex})


@contextmanager
def stores():
    """Fresh stores for this run: a SecantusDB in memory, a new PostgreSQL database, a new Redis prefix."""
    run_id = uuid.uuid4().hex[:8]
    mongo_port = free_port()
    mongo = start_mongo(mongo_port, ":memory:")
    database_url = local_setting("DATABASE_URL").rsplit("/", 1)[0] + f"/bench_{run_id}"
    ensure_postgres(database_url)
    ensure_redis(local_setting("REDIS_URL"))
    settings = {"MONGODB_URL": f"mongodb://127.0.0.1:{mongo_port}", "MONGODB_DATABASE": f"bench_{run_id}",
                "DATABASE_URL": database_url, "REDIS_URL": local_setting("REDIS_URL"),
                "REDIS_KEY_PREFIX": f"bench:{run_id}:", "LOG_LEVEL": "WARNING",
                **TOKENS, "CARD_FINGERPRINT_KEY": "bench-card-fingerprint-" + uuid.uuid4().hex,
                "GATEWAY_RATE_LIMITS": "off"}  # measured here: what a request costs, not the rate limits
    try:
        run_step(settings)
        yield settings
    finally:
        stop([mongo])
        drop_database(database_url)
        delete_keys(local_setting("REDIS_URL"), f"bench:{run_id}:*")


def first_success_seconds(route: Route, settings: dict, fixtures: Fixtures | None,
                          store_variables: dict | None = None) -> tuple[float, bool]:
    """Seconds from spawn to the first 2xx answer of the route's probe (True), or to its first answer of any status
    when it has no probe (False). The probe is built (and what it needs made) before the clock starts.
    `store_variables`: given to a library floor (bench/floors), which names no settings of ours."""
    request = probe(route.name, fixtures) if fixtures else None
    probed = request is not None or store_variables is not None
    if request is None:
        request = Probe("GET", (route.path or "/").replace("{", "").replace("}", ""))
    port = free_port()
    # One client made before the clock starts: a new one per attempt built an SSL context each time (~10 ms of
    # CPU), taking the second core from the store that a starting function talks to while hello talks to none.
    client = httpx.Client(timeout=30)
    started = time.perf_counter()
    running = start_function(route, port, None, settings, subprocess.DEVNULL, store_variables)
    try:
        response = first_answer(route.name, running.process, client, port, request)
        if probed and not response.is_success:
            raise RuntimeError(f"{route.name}'s cold-start probe answered {response.status_code}: {response.text}")
        return time.perf_counter() - started, probed
    finally:
        stop([running.process])
        client.close()


def first_answer(name: str, process: subprocess.Popen, client: httpx.Client, port: int,
                 request: Probe) -> httpx.Response:
    """The first answer of a starting function to `request`, asked again every 5 ms until something listens."""
    while True:
        try:
            return client.request(request.method, f"http://127.0.0.1:{port}{request.path}",
                                  headers=request.headers, json=request.json)
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited while starting") from None
            time.sleep(0.005)


# The library floor of each store (bench/floors): what the fixed choices cost a function of that store at start.
FLOORS = {package: Route(f"floor-{package}", "GET", "/", f"bench/floors/{package}.py", "floor", "library floor")
          for package in ("catalog", "cart", "orders")}
FLOOR_OF = {"catalog": "catalog", "cart": "cart", "orders": "orders", "notify": "orders"}  # a package's store's


def floor_of(route: Route) -> Route:
    """The library floor of the store `route`'s function uses (its package under functions/)."""
    return FLOORS[FLOOR_OF[route.source.split("/")[1]]]


def floor_variables(settings: dict) -> dict:
    return {name: settings[name] for name in ("MONGODB_URL", "MONGODB_DATABASE", "REDIS_URL", "DATABASE_URL")}


def started_beside(route: Route, settings: dict, fixtures: Fixtures) -> tuple[dict[str, list[float]], bool]:
    """RUNS rounds of three starts side by side: hello, the route's library floor, the route. A shared machine's
    speed drifts during a run (hello's median moved 290 -> 510 ms within one here); all three move alike."""
    floor = floor_of(route)
    times: dict[str, list[float]] = {"hello": [], "floor": [], "function": []}
    probed = False
    for _ in range(RUNS):
        times["hello"].append(first_success_seconds(HELLO, settings, None)[0])
        times["floor"].append(first_success_seconds(floor, settings, None, floor_variables(settings))[0])
        seconds, probed = first_success_seconds(route, settings, fixtures)
        times["function"].append(seconds)
    return times, probed


def cold_start(settings: dict, fixtures: Fixtures) -> list[dict]:
    """Each function's start against the hellos and floors started beside it (ratio, to_floor); each floor's
    against all the hellos started beside it."""
    rows, beside = [], {floor.name: {"hello": [], "floor": []} for floor in FLOORS.values()}
    for route in ROUTES:
        times, probed = started_beside(route, settings, fixtures)
        hello, floor, median = (statistics.median(times[key]) for key in ("hello", "floor", "function"))
        floor_name = floor_of(route).name
        beside[floor_name]["hello"] += times["hello"]
        beside[floor_name]["floor"] += times["floor"]
        rows.append({"function": route.name, "median_ms": round(median * 1000), "hello_ms": round(hello * 1000),
                     "ratio": round(median / hello, 2), "floor": floor_name, "floor_ms": round(floor * 1000),
                     "to_floor": round(median / floor, 2),
                     "probe": "2xx from its store" if probed else "first answer (no probe)"})
    floors = []
    for floor_name, times in beside.items():
        hello, floor = statistics.median(times["hello"]), statistics.median(times["floor"])
        floors.append({"function": floor_name, "median_ms": round(floor * 1000), "hello_ms": round(hello * 1000),
                       "ratio": round(floor / hello, 2), "probe": "2xx from its store"})
    return floors + rows


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
HTTP_CALLS_PER_CART = 1  # a cart is priced by catalog-lookup-products on every read


@contextmanager
def warm_shop(settings: dict):
    """The whole shop, warm, with the fixtures the probes and the warm-cost cases need, and a hello-world."""
    shop = LocalShop.on_free_ports(settings, log_dir=RESULTS / "bench-logs")
    hello_port = free_port()
    hello = start_function(HELLO, hello_port, None, settings, subprocess.DEVNULL)
    try:
        shop.start()
        wait_for_port(hello_port, hello.process)
        yield shop, hello, make_fixtures(shop)
    finally:
        stop([hello.process])
        shop.stop()


def make_fixtures(shop: LocalShop) -> Fixtures:
    admin = {"Authorization": f"Bearer {issue_token('bench', 'admin', settings=TOKENS)}"}
    user = "bench-user"
    customer = {"Authorization": f"Bearer {issue_token(user, 'customer', settings=TOKENS)}"}
    with httpx.Client(base_url=shop.url, timeout=30) as client:
        product = client.post("/products", headers=admin, json={
            "sku": "BENCH-1", "name": "Bench Mug", "brand": "Bench", "stock_quantity": 1_000_000,
            "price": {"amount": "9.90", "currency": "EUR"}}).json()
        client.post(f"/cart/{user}/items", headers=customer, json={"product_sku": "BENCH-1", "quantity": 1})
        order_body = {"user_id": user, "items": [{"product_sku": "BENCH-1", "quantity": 1}],
                      "shipping_address": {"street": "1 Bench St", "city": "Lyon", "postal_code": "69001",
                                           "country": "FR"},
                      "payment": {"card_number": "4242424242424242", "expiry": "12/39", "cvv": "123"},
                      "contact": {"email": "bench@example.com"}}  # checked on every order, as most orders carry one
        order = client.post("/orders", json=order_body, headers={**customer, "Idempotency-Key": uuid.uuid4().hex})
        assert order.status_code == 201, order.text
    return Fixtures(shop, admin, customer, user, "BENCH-1", product["id"], order.json()["id"], order_body, TOKENS)


def sender(base_url: str, probe_of) -> tuple[httpx.Client, callable]:
    """A client and `send(count)`; `send.answered` and `send.cached` (answers carrying `Age`: from a cache) count."""
    client = httpx.Client(base_url=base_url, timeout=30)

    def send(count: int) -> None:
        for _ in range(count):
            request = probe_of()
            response = client.request(request.method, request.path, headers=request.headers, json=request.json)
            assert response.is_success, response.text
            send.answered += 1
            send.cached += "age" in response.headers

    send.answered = send.cached = 0
    return client, send


def warm_cost(settings: dict, shop: LocalShop, hello, fixtures: Fixtures, mix: list[str]) -> tuple[list[dict], dict]:
    hello_url = f"http://127.0.0.1:{hello.port}"
    cases = [("GET /products/{id}", "catalog-get-product", REQUESTS),
             ("GET /cart/{user}", "cart-get-cart", REQUESTS),
             ("POST /orders", "orders-create-order", max(100, REQUESTS // 5))]
    clients = []
    try:
        hello_client, say_hello = sender(hello_url, lambda: Probe("GET", "/"))
        clients.append(hello_client)
        # Products: the Zipf mix of catalog.product_mix, so cache hits and misses are both counted; the others
        # repeat their probe.
        paths = itertools.cycle(mix)
        requests = {"catalog-get-product": lambda: Probe("GET", next(paths))}
        senders = {}
        for _, name, _ in cases:
            # Straight to the function, as the latency table: the local gateway (not deployed: Knative's ingress
            # is) slows a one-at-a-time client ~3x, and with it the rate that keeps the product cache warm.
            client, senders[name] = sender(shop.functions[name].url,
                                           requests.get(name, lambda name=name: probe(name, fixtures)))
            clients.append(client)
        for send in (say_hello, *senders.values()):
            send(20)  # warm up clients, pools and indexes
        python = str(Path(function_command()[0]).parent / "python")  # the functions' environment (bench/runtime.py)
        bare_cpu = hello_cpu_under(settings, [python, "-m", "uvicorn", "bench.hello_bare:app", "--host",
                                              "127.0.0.1", "--port", "{port}", "--loop", "uvloop", "--http",
                                              "httptools", "--log-level", "warning", "--no-access-log"])
        floors = driver_floor(settings, fixtures.product_id, f"{settings['REDIS_KEY_PREFIX']}cart:{{{fixtures.user}}}",
                              hello_url)
        store_floors = {"catalog-get-product": floors["mongo find_one"], "cart-get-cart": floors["redis HGETALL"]
                        + HTTP_CALLS_PER_CART * floors["http call"],
                        "orders-create-order": POSTGRES_TRIPS_PER_ORDER * floors["postgres round trip"]
                        + HTTP_CALLS_PER_ORDER * floors["http call"]}
        # Rounds: hello, then each endpoint, again and again; each endpoint's ratio is to the hello of its own
        # round, so a change in the machine's load between the two measurements does not pass for a cost.
        hellos, used = [], {name: [] for _, name, _ in cases}
        product = senders["catalog-get-product"]
        product.answered = product.cached = 0  # the warm-up's are not counted
        for _ in range(WARM_ROUNDS):
            hellos.append(cpu_per_request(hello.process.pid, say_hello, REQUESTS))
            for _, name, count in cases:
                used[name].append(cpu_per_request(shop.functions[name].process.pid, senders[name], count))
        hello_cpu = statistics.median(hellos)
        rows = [{"endpoint": "bare Starlette on uvicorn (uvloop, httptools)", "requests": REQUESTS,
                 "cpu_us": round(bare_cpu * 1e6), "floor_us": round(bare_cpu * 1e6), "ratio": 1.0},
                {"endpoint": "hello world (functions-framework)", "requests": REQUESTS * WARM_ROUNDS,
                 "cpu_us": round(hello_cpu * 1e6), "floor_us": round(bare_cpu * 1e6),
                 "ratio": round(hello_cpu / bare_cpu, 2)}]
        cases[0] = (f"{cases[0][0]} (Zipf mix; cache 2 s: {product.cached / product.answered:.0%} hits)", *cases[0][1:])
        for label, name, count in cases:
            ratios = sorted(cpu / (hello_round + store_floors[name]) for cpu, hello_round in zip(used[name], hellos))
            rows.append({"endpoint": label, "requests": count * WARM_ROUNDS,
                         "cpu_us": round(statistics.median(used[name]) * 1e6),
                         "floor_us": round((hello_cpu + store_floors[name]) * 1e6),
                         "ratio": round(statistics.median(ratios), 2),
                         "ratio_range": f"{ratios[0]:.2f}-{ratios[-1]:.2f}"})
        rows.insert(3, product_cache_off(settings, mix, hello_cpu, store_floors["catalog-get-product"]))
        rows += catalog.list_and_search_cost(settings, hello_cpu, REQUESTS)
    finally:
        for client in clients:
            client.close()
    return rows, {"driver_floor_us": {k: round(v * 1e6, 1) for k, v in floors.items()}}


def product_cache_off(settings: dict, mix: list[str], hello_cpu: float, find_one: float) -> dict:
    """GET /products/{id} over the same mix from an instance whose cache is off: every read pays its round trip,
    as the floor does."""
    port = free_port()
    function = start_function(named_route("catalog-get-product"), port, None,
                              {**settings, "PRODUCT_CACHE_TTL_SECONDS": "0"}, subprocess.DEVNULL)
    try:
        result = catalog.measure(function.process, port, mix[:REQUESTS], 1)
    finally:
        stop([function.process])
    floor = hello_cpu + find_one
    return {"endpoint": "GET /products/{id} (same mix; cache off)", "requests": REQUESTS,
            "cpu_us": result["cpu_us_per_request"], "floor_us": round(floor * 1e6),
            "ratio": round(result["cpu_us_per_request"] / (floor * 1e6), 2)}


def hello_cpu_under(settings: dict, command: list[str]) -> float:
    """CPU per request of a hello-world served by `command` ("{port}" in it, and PORT, become a free port)."""
    port = free_port()
    env = {**os.environ, **settings, "PYTHONPATH": str(ROOT), "PORT": str(port)}
    server = spawn([part.replace("{port}", str(port)) for part in command], env, subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        client, send = sender(f"http://127.0.0.1:{port}", lambda: Probe("GET", "/"))
        with client:
            send(20)
            return cpu_per_request(server.pid, send, REQUESTS)
    finally:
        stop([server])


def latency(shop: LocalShop, hello, fixtures: Fixtures) -> list[dict]:
    """p50/p99 with CONCURRENCY requests in flight, straight to each function (no gateway)."""
    cases = [("hello world", f"http://127.0.0.1:{hello.port}", lambda: Probe("GET", "/"), REQUESTS)]
    cases += [(label, shop.functions[name].url, lambda name=name: probe(name, fixtures), count)
              for label, name, count in (("GET /products/{id}", "catalog-get-product", REQUESTS),
                                         ("GET /cart/{user}", "cart-get-cart", REQUESTS),
                                         ("POST /orders", "orders-create-order", max(100, REQUESTS // 5)))]
    rows = []
    for label, url, probe_of, count in cases:
        asyncio.run(_timed_blast(url, probe_of, 20))
        elapsed, times = asyncio.run(_timed_blast(url, probe_of, count))
        times.sort()
        rows.append({"endpoint": label, "requests": count, "concurrency": CONCURRENCY,
                     "p50_ms": round(times[len(times) // 2] * 1000, 2),
                     "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 2),
                     "throughput_rps": round(count / elapsed)})
    return rows


async def _timed_blast(url: str, probe_of, count: int) -> tuple[float, list[float]]:
    times: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 limits=httpx.Limits(max_connections=CONCURRENCY)) as client:
        queue = iter(range(count))

        async def worker():
            for _ in queue:
                request = probe_of()
                started = time.perf_counter()
                response = await client.request(request.method, request.path, headers=request.headers,
                                                json=request.json)
                times.append(time.perf_counter() - started)
                assert response.is_success, response.text

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, times


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
    columns = list(dict.fromkeys(column for row in rows for column in row))
    widths = {c: max(len(c), *(len(str(row.get(c, ""))) for row in rows)) for c in columns}
    lines = [title, "  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(lines)


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor())
    return {"cores": os.cpu_count(), "model": model, "python": platform.python_version(),
            "platform": platform.platform(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return (found.stdout.strip() or "unknown") + ("+changes" if dirty else "")


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(use_image_environment(), flush=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit(), "machine": machine(),
              "runs": RUNS, "requests": REQUESTS, "concurrency": CONCURRENCY}
    with stores() as settings:
        mix = catalog.seeded_product_mix(settings, REQUESTS)
        with warm_shop(settings) as (shop, hello, fixtures):
            result["cold_start"] = cold_start(shop.settings, fixtures)
            print(table(f"\nCold start: spawn -> first successful answer from its store, median of {RUNS}, each start "
                        "after one of hello's (ratio: to those; to_floor: to its store's library floor, bench/floors)",
                        result["cold_start"]), flush=True)
            result["warm_cost"], extra = warm_cost(settings, shop, hello, fixtures, mix)
            result["warm_cost_floors"] = extra["driver_floor_us"]
            print(table("\nWarm cost: CPU microseconds per request (ratio to hello + raw store round trips; hello's "
                        "to a bare uvicorn app)", result["warm_cost"]), flush=True)
            result["latency"] = latency(shop, hello, fixtures)
            print(table(f"\nLatency at concurrency {CONCURRENCY}, straight to each function", result["latency"]),
                  flush=True)
        result["versus_seed"] = versus_seed(settings, mix)
        print(table(f"\nGET /products/{{id}}: ours vs the seed's FastAPI + uvicorn "
                    f"(the same {REQUESTS} reads of {catalog.MIX_PRODUCTS} products, Zipf mix, concurrency {CONCURRENCY})", result["versus_seed"]), flush=True)
    (RESULTS / "bench.json").write_text(json.dumps(result, indent=2))
    with open(RESULTS / "history.jsonl", "a") as history:
        history.write(json.dumps(result) + "\n")
    print(f"\nwritten: {RESULTS / 'bench.json'}; appended to {RESULTS / 'history.jsonl'}")


if __name__ == "__main__":
    main()
