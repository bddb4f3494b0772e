"""`make bench-catalog` (and part of `make bench`): what the catalog's reads cost, counted honestly.

1. Product reads as a mix: MIX_PRODUCTS products requested with Zipf weights (a few popular, a long tail), the
   same sequence for every implementation measured, so the per-instance cache's misses count as much as its hits.
2. Listing at 1k and 100k products (`GET /products?category=…`): CPU per request of our function and of the
   MongoDB-protocol server, apart, so what grows with the catalog shows on the side it grows.
3. List and search CPU per request against their floor (the hello-world plus the round trips each request
   needs, done directly with the driver), over Zipf mixes of listing pages and of search terms, with the
   per-instance cache on (hits and misses both counted) and off.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx

from bench.proc import tree_cpu_seconds
from local.migrate import run_step
from local.processes import free_port, start_function, stop, wait_for_port
from local.stores import start_mongo
from shared.routes import route

MIX_PRODUCTS = 1000
CATEGORIES = 10  # every product is in one: a category holds a tenth of the catalog
SIZES = (1_000, 100_000)
SEARCHED_PRODUCTS = 200
LIST_REQUESTS = int(os.environ.get("BENCH_LIST_REQUESTS", "20"))
LIST_PATH = "/products?category=cat-3&limit=20"
SEARCH_PATH = "/search?q=mug+3&limit=20"


def seed_products(url: str, database: str, count: int, index_names: set[str] | None = None) -> list[str]:
    """`count` products as the catalog stores them, inserted straight into the collection, then the catalog's
    indexes built (only `index_names` when given); their ids."""
    from pymongo import MongoClient

    from functions.catalog.models import ProductCreate
    from functions.catalog.store import INDEXES, new_document

    now = datetime.now(timezone.utc).replace(microsecond=0)
    with MongoClient(url, tz_aware=True) as client:
        products = client[database]["products"]
        for start in range(0, count, 5000):
            products.insert_many([new_document(ProductCreate(
                sku=f"MIX-{number}", name=f"Mug {number}", brand=f"Brand {number % 50}",
                categories=[f"cat-{number % CATEGORIES}"], tags=[f"tag-{number % 30}"], stock_quantity=number % 40,
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


def _facet_listing(category: str) -> list[dict]:
    """The listing's query before this change: every match sorted inside `$facet`, for comparison."""
    return [{"$match": {"is_active": True, "categories": category}}, {"$facet": {
        "items": [{"$sort": {"created_at": -1, "_id": -1}}, {"$skip": 0}, {"$limit": 20}],
        "total": [{"$count": "n"}]}}]


def _plan(url: str, database: str) -> str:
    """The server's winning plan for the page's query, stage by stage (what an index does for it)."""
    from pymongo import MongoClient

    with MongoClient(url) as client:
        stage = client[database]["products"].find({"is_active": True, "categories": "cat-3"}).sort(
            [("created_at", -1), ("_id", -1)]).limit(21).explain()["queryPlanner"]["winningPlan"]
    stages = []
    while stage:
        stages.append(stage["stage"] + (f"({stage['indexName']})" if "indexName" in stage else ""))
        stage = stage.get("inputStage")
    return " <- ".join(stages)


def listing_at_sizes() -> list[dict]:
    """A category's first page at each catalog size, as `store.find` runs it in a function: the function's own
    CPU per page (driver, query, models; measured in this process) apart from the server's (from /proc), and the
    server's for the `$facet` query it replaced."""
    from pymongo import MongoClient

    from functions.catalog import store
    from functions.catalog.models import ProductQuery
    from local.migrate import record_catalog_version
    from shared.settings import settings as typed_settings

    rows = []
    port = free_port()
    server = start_mongo(port, ":memory:")
    url = f"mongodb://127.0.0.1:{port}"
    try:
        for size in SIZES:
            database = f"listing_{size}"
            started = time.perf_counter()
            seed_products(url, database, size, {"category_by_created_at"})
            seeded = time.perf_counter() - started
            os.environ.update(MONGODB_URL=url, MONGODB_DATABASE=database, MONGODB_TIMEOUT_MS="2000")
            typed_settings.cache_clear()

            async def pages() -> tuple[float, float, float]:
                # Only the index this query walks was built: the other nine take minutes on 100k documents.
                await record_catalog_version()
                query = ProductQuery(category="cat-3")
                await store.find(query, include_inactive=False)
                cpu, server_cpu, wall = time.process_time(), tree_cpu_seconds(server.pid), time.perf_counter()
                for _ in range(LIST_REQUESTS):
                    await store.find(query, include_inactive=False)
                return ((time.process_time() - cpu) / LIST_REQUESTS,
                        (tree_cpu_seconds(server.pid) - server_cpu) / LIST_REQUESTS,
                        (time.perf_counter() - wall) / LIST_REQUESTS)

            ours, theirs, wall = asyncio.run(pages())
            with MongoClient(url) as client:
                facet = client[database]["products"]
                facet.aggregate(_facet_listing("cat-3")).to_list()
                before = tree_cpu_seconds(server.pid)
                for _ in range(max(3, LIST_REQUESTS // 4)):
                    facet.aggregate(_facet_listing("cat-3")).to_list()
                facet_cpu = (tree_cpu_seconds(server.pid) - before) / max(3, LIST_REQUESTS // 4)
            plan = _plan(url, database)
            rows.append({"products": size, "seeded_s": round(seeded), "function_cpu_us": round(ours * 1e6),
                         "server_cpu_us": round(theirs * 1e6), "wall_ms": round(wall * 1000, 1),
                         "server_cpu_us_with_$facet": round(facet_cpu * 1e6), "server_plan": plan})
    finally:
        stop([server])
        typed_settings.cache_clear()
    for row in rows:
        row["function_ratio"] = round(row["function_cpu_us"] / rows[0]["function_cpu_us"], 2)
        row["server_ratio"] = round(row["server_cpu_us"] / rows[0]["server_cpu_us"], 2)
    return rows


def list_and_search_floor(settings: dict, hello_cpu: float, pages: list[tuple], terms: list[str]) -> dict[str, float]:
    """Hello's CPU plus the client-side CPU of the round trips each request of the mix needs, done directly with
    the (sync) driver: a listing page's find and, unless the page ends the selection, its count; a search's one
    aggregate (the ranked page and its total in one `$facet`)."""
    from functions.catalog.store import _SEARCH_WEIGHTS
    from pymongo import MongoClient

    products = MongoClient(settings["MONGODB_URL"], tz_aware=True)[settings["MONGODB_DATABASE"]]["products"]

    def list_page(page: tuple) -> None:
        category, sort, offset, in_stock = page
        conditions = {"is_active": True, "categories": category} | ({"stock_quantity": {"$gt": 0}} if in_stock else {})
        found = products.find(conditions, {"holds": 0}).sort(LIST_SORTS[sort]).skip(offset).limit(PAGE_LIMIT + 1) \
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

    port = free_port()
    server = start_mongo(port, ":memory:")
    try:
        url = f"mongodb://127.0.0.1:{port}"
        product_id = seed_products(url, "drivers", 10)[0]
        print(table("\nOne product read from an async function: client-side CPU per read",
                    driver_options(url, "drivers", product_id)), flush=True)
    finally:
        stop([server])
    rows = listing_at_sizes()
    print(table(f"\nGET {LIST_PATH} at each catalog size: CPU per page, the function's and the server's "
                f"({LIST_REQUESTS} pages; ratio to the smallest)", rows))


if __name__ == "__main__":
    main()
