"""`make bench-catalog` (and part of `make bench`): what the catalog's reads cost, counted honestly.

1. Product reads as a mix: MIX_PRODUCTS products requested with Zipf weights (a few popular, a long tail), the
   same sequence for every implementation measured, so the per-instance cache's misses count as much as its hits.
2. Listing at 1k and 100k products (`GET /products?category=…`), for a category of fixed size and one that grows
   with the catalog: CPU per page of our function (and what is left of it without the CPU its MongoDB client
   spends waiting as long for any reply) and of the MongoDB-protocol server, apart, so what grows with the catalog
   shows on the side it grows.
3. List and search CPU per request against their floor (the hello-world plus the round trips each request
   needs, done directly with the driver), over Zipf mixes of listing pages and of search terms, with the
   per-instance cache on (hits and misses both counted) and off.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import statistics
import subprocess
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx

from bench.proc import tree_cpu_seconds
from functions.catalog import cursor
from local.migrate import run_step
from local.processes import free_port, start_function, stop, wait_for_port
from local.stores import start_mongo
from shared.routes import route

MIX_PRODUCTS = 1000
CATEGORIES = 10  # every product is in one: a category holds a tenth of the catalog
FIXED, FIXED_CATEGORY = "cat-fixed", 200  # the first 200 products are in this one too, at every catalog size
SIZES = (1_000, 100_000)
SEARCHED_PRODUCTS = 200
LIST_REQUESTS = int(os.environ.get("BENCH_LIST_REQUESTS", "15"))
LIST_PATH = "/products?category=cat-3&limit=20"
SEARCH_PATH = "/search?q=mug+3&limit=20"


def seed_products(url: str, database: str, count: int, index_names: set[str] | None = None,
                  fixed: int = 0) -> list[str]:
    """`count` products as the catalog stores them, inserted straight into the collection, then the catalog's
    indexes built (only `index_names` when given); their ids. The first `fixed` are also in category FIXED."""
    from pymongo import MongoClient

    from functions.catalog.models import ProductCreate
    from functions.catalog.store import INDEXES, new_document

    now = datetime.now(timezone.utc).replace(microsecond=0)
    with MongoClient(url, tz_aware=True) as client:
        products = client[database]["products"]
        for start in range(0, count, 5000):
            products.insert_many([new_document(ProductCreate(
                sku=f"MIX-{number}", name=f"Mug {number}", brand=f"Brand {number % 50}",
                categories=[f"cat-{number % CATEGORIES}", *([FIXED] if number < fixed else [])],
                tags=[f"tag-{number % 30}"], stock_quantity=number % 40,
                price={"amount": str(Decimal(100 + number * 37 % 9000) / 100), "currency": "EUR"},
                description_short="A mug for the benchmark", description_long="Stoneware, holds 300 ml. " * 8),
                now + timedelta(milliseconds=number)) for number in range(start, min(start + 5000, count))])
        products.create_indexes([index for index in INDEXES
                                 if index_names is None or index.document["name"] in index_names])
        return [str(document["_id"]) for document in products.find({}, {"_id": 1})]


def zipf_mix(items: list, count: int, seed: int) -> list:
    """`count` draws from `items` with Zipf weights (the k-th most popular drawn 1/k as often as the first), in
    an order shuffled by `seed`: the same sequence for every implementation measured."""
    rng = random.Random(seed)
    popular = rng.sample(items, len(items))
    return rng.choices(popular, weights=[1 / rank for rank in range(1, len(popular) + 1)], k=count)


def product_mix(ids: list[str], count: int, seed: int = 7) -> list[str]:
    """Paths of `count` product reads drawn with Zipf weights: the same sequence for every implementation."""
    return [f"/products/{product_id}" for product_id in zipf_mix(ids, count, seed)]


def seeded_product_mix(settings: dict, count: int) -> list[str]:
    """MIX_PRODUCTS products seeded into the settings' database, and `count` reads of them as `product_mix`."""
    return product_mix(seed_products(settings["MONGODB_URL"], settings["MONGODB_DATABASE"], MIX_PRODUCTS), count)


# The listing pages and searches measured against their floor: every category in each sort, the first and the
# second page (with and without in-stock filtering), and searches for names and brands, drawn with Zipf weights.
PAGE_LIMIT = 10
LIST_SORTS = {"-created_at": [("created_at", -1), ("_id", -1)], "price": [("price.amount", 1), ("_id", 1)],
              "-price": [("price.amount", -1), ("_id", -1)], "name": [("name", 1), ("_id", 1)]}
PAGES = [(f"cat-{number}", sort, offset, in_stock) for number in range(CATEGORIES) for sort in LIST_SORTS
         for offset in (0, PAGE_LIMIT) for in_stock in (False, True)]
SEARCHES = [f"mug {number}" for number in range(1, 40)] + [f"brand {number}" for number in range(20)]


def listing_path(page: tuple) -> str:
    category, sort, offset, in_stock = page
    return (f"/products?category={category}&sort={sort}&limit={PAGE_LIMIT}&offset={offset}"
            + ("&in_stock=true" if in_stock else ""))


def search_path(term: str) -> str:
    return f"/search?q={term.replace(' ', '+')}&limit={PAGE_LIMIT}"


async def blast(base_url: str, paths: list[str], concurrency: int) -> tuple[float, int]:
    """Send every path (200 expected), `concurrency` at a time; the seconds it took and how many answers came
    from a cache (they carry `Age`)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        queue, cached = iter(paths), 0

        async def worker():
            nonlocal cached
            for path in queue:
                response = await client.get(path)
                assert response.status_code == 200, response.text
                cached += "age" in response.headers

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, cached


def measure(process: subprocess.Popen, port: int, paths: list[str], concurrency: int) -> dict:
    """Throughput, CPU per request of the process tree, and the share of answers served from a cache."""
    wait_for_port(port, process)
    base = f"http://127.0.0.1:{port}"
    asyncio.run(blast(base, paths[:20], concurrency))  # connections, clients, indexes
    before = tree_cpu_seconds(process.pid)
    elapsed, cached = asyncio.run(blast(base, paths, concurrency))
    used = tree_cpu_seconds(process.pid) - before
    return {"throughput_rps": round(len(paths) / elapsed), "cpu_us_per_request": round(used / len(paths) * 1e6),
            "cache_hits": f"{cached / len(paths):.0%}"}


def _examined(url: str, database: str, category: str) -> tuple[str, int]:
    """The server's winning plan for a category's first page, stage by stage, and the documents it examined
    (SecantusDB's `explain` executionStats: it counts every index match it fetched, the limit applied after)."""
    from pymongo import MongoClient

    from functions.catalog.store import PUBLIC_FIELDS

    with MongoClient(url) as client:
        explained = client[database].command("explain", {
            "find": "products", "filter": {"is_active": True, "categories": category}, "projection": PUBLIC_FIELDS,
            "sort": dict(cursor.SORTS["-created_at"]), "limit": 21}, verbosity="executionStats")
    stage, stages = explained["queryPlanner"]["winningPlan"], []
    while stage:
        stages.append(stage["stage"] + (f"({stage['indexName']})" if "indexName" in stage else ""))
        stage = stage.get("inputStage")
    return " <- ".join(stages), explained["executionStats"]["totalDocsExamined"]


async def _answered_after(client, seconds: float) -> float:
    """This process's CPU for one `ping` the server answers after `seconds` (a failpoint holds it): what the
    async client spends waiting that long for a reply, the wait's own work being nil."""
    if seconds:
        await client.admin.command("configureFailPoint", "failCommand", mode={"times": 1}, data={
            "failCommands": ["ping"], "blockConnection": True, "blockTimeMS": round(seconds * 1000)})
    cpu = time.process_time()
    await client.admin.command("ping")
    return time.process_time() - cpu


async def _pages(category: str, server_pid: int) -> list[tuple[float, ...]]:
    """LIST_REQUESTS first pages of `category` as `store.find` runs them in a function, one at a time. Per page:
    this process's CPU; its CPU over as long again with no request in flight (pymongo's monitor and periodic
    tasks, each waking every 0.5 s); its CPU waiting as long for one reply (those; on pymongo 4.20
    shared.mongo drops the per-reply cancellation check), an immediate reply's CPU taken off; the CPU of the page's twin, the same
    find and count matching nothing (the server as busy, the replies empty); the server's CPU; the wall time."""
    from functions.catalog import store
    from functions.catalog.models import MAX_COUNTED, ProductQuery
    from local.migrate import record_catalog_version

    await record_catalog_version()
    query = ProductQuery(category=category)
    for _ in range(3):  # the client, its connections, the schema check, the first calls' imports and caches
        await store.find(query, include_inactive=False)
    products = await store.products()
    nothing = {"is_active": True, "categories": category, "sku": {"$exists": False}}  # walks the same matches

    async def twin():
        await products.find(nothing, store.PUBLIC_FIELDS).sort(cursor.SORTS[query.sort]).limit(query.limit + 1) \
            .to_list()
        await products.count_documents(nothing, limit=MAX_COUNTED + 1)

    await twin()
    immediate = statistics.median([await _answered_after(products.database.client, 0) for _ in range(5)])
    samples = []
    for _ in range(LIST_REQUESTS):
        server_cpu = tree_cpu_seconds(server_pid)
        cpu, wall = time.process_time(), time.perf_counter()
        await store.find(query, include_inactive=False)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        server_cpu = tree_cpu_seconds(server_pid) - server_cpu
        idle = time.process_time()
        await asyncio.sleep(wall)
        idle = time.process_time() - idle
        twin_cpu = time.process_time()
        await twin()
        twin_cpu = time.process_time() - twin_cpu
        samples.append((cpu, idle, await _answered_after(products.database.client, wall) - immediate, twin_cpu,
                        server_cpu, wall))
    return samples


def listing_at_sizes() -> list[dict]:
    """A category's first page at each catalog size, for a category of FIXED_CATEGORY products (the store's work
    the same at every size) and one holding a tenth of the catalog (the store's work grows with it): the
    function's CPU per page (driver, query, models), what its client spends idle and waiting for a reply over
    the same wall time, what is left (`own`: the page's work), and the server's CPU and documents examined."""
    from functions.catalog.store import INDEXES
    from shared.settings import settings as typed_settings

    listing_index = next(index.document["name"] for index in INDEXES
                         if list(index.document["key"]) == ["categories", "is_active", "created_at", "_id"])
    rows = []
    port = free_port()
    server = start_mongo(port, ":memory:", test_commands=True)  # failpoints: a reply held as long as a page's
    url = f"mongodb://127.0.0.1:{port}"
    try:
        for size in SIZES:
            database = f"listing_{size}"
            # Only the index this query walks: the other nine take minutes to build on 100k documents.
            seed_products(url, database, size, {listing_index}, fixed=FIXED_CATEGORY)
            os.environ.update(MONGODB_URL=url, MONGODB_DATABASE=database, MONGODB_TIMEOUT_MS="10000")
            typed_settings.cache_clear()
            for label, category in (("fixed", FIXED), ("a tenth", "cat-3")):
                samples = asyncio.run(_pages(category, server.pid))
                cpu, idle, waiting, twin, server_cpu, wall = (statistics.median(column) for column in zip(*samples))
                own = statistics.median(page[0] - page[2] for page in samples)
                beyond_twin = statistics.median(page[0] - page[3] for page in samples)
                plan, examined = _examined(url, database, category)
                rows.append({"products": size, "category": label, "function_cpu_us": round(cpu * 1e6),
                             "idle_cpu_us": round(idle * 1e6), "waiting_cpu_us": round(waiting * 1e6),
                             "own_cpu_us": round(own * 1e6), "twin_cpu_us": round(twin * 1e6),
                             "beyond_twin_us": round(beyond_twin * 1e6), "server_cpu_us": round(server_cpu * 1e6),
                             "docs_examined": examined, "wall_ms": round(wall * 1000, 1), "server_plan": plan})
    finally:
        stop([server])
        typed_settings.cache_clear()
    return rows


def size_ratios(rows: list[dict]) -> list[dict]:
    """Each category's largest catalog against its smallest, column by column."""
    ratios = []
    for label in dict.fromkeys(row["category"] for row in rows):
        small, *_, large = (row for row in rows if row["category"] == label)
        ratios.append({"category": label, **{
            column.removesuffix("_us") + "_ratio": round(large[column] / max(small[column], 1), 2)
            for column in ("function_cpu_us", "own_cpu_us", "twin_cpu_us", "beyond_twin_us", "server_cpu_us",
                           "docs_examined", "wall_ms")}})
    return ratios


def list_and_search_floor(settings: dict, hello_cpu: float, pages: list[tuple], terms: list[str]) -> dict[str, float]:
    """Hello's CPU plus the client-side CPU of the round trips each request of the mix needs, done directly with
    the (sync) driver: a listing page's find and, unless the page ends the selection, its count; a search's one
    aggregate (the ranked page and its total in one `$facet`)."""
    from functions.catalog.store import _SEARCH_WEIGHTS, PUBLIC_FIELDS
    from pymongo import MongoClient

    products = MongoClient(settings["MONGODB_URL"], tz_aware=True)[settings["MONGODB_DATABASE"]]["products"]

    def list_page(page: tuple) -> None:
        category, sort, offset, in_stock = page
        conditions = {"is_active": True, "categories": category} | ({"stock_quantity": {"$gt": 0}} if in_stock else {})
        found = products.find(conditions, PUBLIC_FIELDS).sort(LIST_SORTS[sort]).skip(offset).limit(PAGE_LIMIT + 1) \
            .to_list()
        if len(found) > PAGE_LIMIT or not found and offset:  # the endpoint counts only then (see store.find)
            products.count_documents(conditions, limit=10_001)

    def search(term: str) -> None:
        matching = {"$and": [{"is_active": True}, {"$or": [{field: {"$regex": re.escape(term), "$options": "i"}}
                                                          for field in _SEARCH_WEIGHTS]}]}
        products.aggregate([{"$match": matching}, {"$limit": 1001}, {"$facet": {
            "items": [{"$sort": {"name": 1, "_id": 1}}, {"$limit": PAGE_LIMIT}],
            "total": [{"$count": "n"}]}}]).to_list()

    def timed(work, items: list) -> float:
        for item in items[:20]:
            work(item)
        started = time.process_time()
        for item in items:
            work(item)
        return (time.process_time() - started) / len(items)

    return {"GET /products?category=": hello_cpu + timed(list_page, pages),
            "GET /search?q=": hello_cpu + timed(search, terms)}


def list_and_search_cost(settings: dict, hello_cpu: float, requests: int) -> list[dict]:
    """CPU per request of list and search against the floor, on a catalog of their own (SEARCHED_PRODUCTS: the
    function's work does not depend on the catalog's size, SecantusDB's search does): a Zipf mix of pages and of
    searches (the same sequence for the floor), with this instance's cache on (hits and misses both counted)
    and off."""
    settings = {**settings, "MONGODB_DATABASE": settings["MONGODB_DATABASE"] + "_lists", "SEARCH_MAX_TIME_MS": "10000"}
    seed_products(settings["MONGODB_URL"], settings["MONGODB_DATABASE"], SEARCHED_PRODUCTS)
    run_step(settings)  # the deploy step: functions serve only a migrated store
    pages, terms = zipf_mix(PAGES, requests, seed=11), zipf_mix(SEARCHES, requests, seed=13)
    floors = list_and_search_floor(settings, hello_cpu, pages, terms)
    rows = []
    for ttl in ("2", "0"):
        for name, label, paths in (("catalog-list-products", "GET /products?category=", map(listing_path, pages)),
                                   ("catalog-search-products", "GET /search?q=", map(search_path, terms))):
            port = free_port()
            function = start_function(route(name), port, None, {**settings, "PRODUCT_CACHE_TTL_SECONDS": ttl},
                                      subprocess.DEVNULL)
            try:
                result = measure(function.process, port, list(paths), 1)
            finally:
                stop([function.process])
            floor = floors[label]
            rows.append({"endpoint": f"{label} (Zipf mix; cache {'off' if ttl == '0' else ttl + ' s'}: "
                                     f"{result['cache_hits']} hits)", "requests": requests,
                         "cpu_us": result["cpu_us_per_request"], "floor_us": round(floor * 1e6),
                         "ratio": round(result["cpu_us_per_request"] / (floor * 1e6), 2)})
    return rows


def driver_options(url: str, database: str, product_id: str, count: int = 2000) -> list[dict]:
    """One product read by each way of calling the store an async function has, CPU per read of this process
    (all its threads): the async client; the sync client called inline (cheapest, but it blocks the event loop
    for the whole round trip: rejected); the sync client in a small thread pool (the loop stays free)."""
    from concurrent.futures import ThreadPoolExecutor

    from bson import ObjectId
    from pymongo import AsyncMongoClient, MongoClient

    query = {"_id": ObjectId(product_id)}
    sync = MongoClient(url, tz_aware=True)[database]["products"]
    pool = ThreadPoolExecutor(4)

    async def run(concurrency: int) -> list[dict]:
        asynchronous = AsyncMongoClient(url, tz_aware=True)[database]["products"]
        loop = asyncio.get_running_loop()
        ways = {"async client": lambda: asynchronous.find_one(query),
                "sync client, thread pool": lambda: loop.run_in_executor(pool, sync.find_one, query)}
        rows = []
        for name, read in ways.items():
            await read()
            reads = iter(range(count))

            async def worker():
                for _ in reads:
                    await read()

            started = time.process_time()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            rows.append({"way": name, "concurrency": concurrency,
                         "cpu_us_per_read": round((time.process_time() - started) / count * 1e6)})
        return rows

    sync.find_one(query)
    started = time.process_time()
    for _ in range(count):
        sync.find_one(query)
    rows = [{"way": "sync client, inline (blocks the loop)", "concurrency": 1,
             "cpu_us_per_read": round((time.process_time() - started) / count * 1e6)}]
    for concurrency in (1, 8):
        rows += asyncio.run(run(concurrency))
    pool.shutdown()
    return rows


def main() -> None:
    from bench.run import table
    from bench.runtime import use_image_environment

    print(use_image_environment(), flush=True)

    port = free_port()
    server = start_mongo(port, ":memory:")
    try:
        url = f"mongodb://127.0.0.1:{port}"
        product_id = seed_products(url, "drivers", 10)[0]
        print(table("\nOne product read from an async function: client-side CPU per read",
                    driver_options(url, "drivers", product_id)), flush=True)
    finally:
        stop([server])
    load = os.getloadavg()[0]
    rows = listing_at_sizes()
    print(table(f"\nA category's first page (GET /products?category=…&limit=20) at each catalog size, medians of "
                f"{LIST_REQUESTS} pages: the function's CPU; its client's, idle and waiting for one reply, over the "
                f"same wall time; the function's less that waiting (own); the page's twin matching nothing (the "
                f"server as busy) and the page beyond it; the server's (load average {load:.1f} at the start, "
                f"{os.getloadavg()[0]:.1f} at the end)", rows))
    print(table(f"\n{SIZES[-1]:,} products against {SIZES[0]:,}", size_ratios(rows)))


if __name__ == "__main__":
    main()
