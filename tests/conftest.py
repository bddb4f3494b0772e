"""Session-wide real servers: a MongoDB-protocol server, a fresh PostgreSQL database and Redis key prefix, and
every endpoint function running as its own functions-framework process behind the local gateway."""

from __future__ import annotations

import os

import httpx
import pytest

from local.config import local_setting
from local.migrate import run_step
from local.processes import free_port, stop
from local.stores import delete_keys, drop_database, ensure_postgres, ensure_redis, start_mongo

from tests.support import CARD_FINGERPRINT_KEY, RUN_ID, USER_TOKEN_SETTINGS, running_shop


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory):
    if os.environ.get("MONGODB_URL"):
        yield os.environ["MONGODB_URL"]
        return
    port = free_port()
    log = open(tmp_path_factory.mktemp("mongo") / "mongo.log", "ab")
    server = start_mongo(port, ":memory:", log)
    yield f"mongodb://127.0.0.1:{port}"
    stop([server])


@pytest.fixture(scope="session")
def postgres_url():
    base = local_setting("DATABASE_URL").rsplit("/", 1)[0]
    url = f"{base}/shop_test_{RUN_ID}"
    ensure_postgres(url)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def redis_url():
    url = local_setting("REDIS_URL")
    ensure_redis(url)
    yield url
    delete_keys(url, f"test:{RUN_ID}:*")


@pytest.fixture(scope="session")
def shop_settings(mongo_url, postgres_url, redis_url):
    settings = {
        "MONGODB_URL": mongo_url,
        "MONGODB_DATABASE": f"shop_test_{RUN_ID}",
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"test:{RUN_ID}:",
        **USER_TOKEN_SETTINGS,
        "CARD_FINGERPRINT_KEY": CARD_FINGERPRINT_KEY,
        "LOG_LEVEL": "INFO",
        "GATEWAY_RATE_LIMITS": "off",  # every test shares one gateway; tests/security/test_rate_limit.py starts its own
        # Read-after-write tests see every write at once; tests/functions/test_product_cache.py runs the cache.
        "PRODUCT_CACHE_TTL_SECONDS": "0",
        "SEARCH_MAX_TIME_MS": "10000",  # SecantusDB on a loaded machine; the limit has its own test
        # SecantusDB does not dedupe a retried write as MongoDB does (retryable writes): past the socket timeout,
        # pymongo's retry would apply a write twice on it. Its slow moments on a loaded machine get 5 s; the
        # default (1.5 s) has its own tests (test_stalled_stores, test_catalog's store-down test).
        "MONGODB_TIMEOUT_MS": "5000",
    }
    run_step(settings)  # the deploy's migration step, before any function starts
    yield settings
    if os.environ.get("MONGODB_URL"):  # a server the session did not start: drop what it wrote there
        from pymongo import MongoClient

        with MongoClient(mongo_url, serverSelectionTimeoutMS=2000) as client:
            client.drop_database(settings["MONGODB_DATABASE"])


@pytest.fixture(scope="session")
def shop(shop_settings, tmp_path_factory):
    with running_shop(shop_settings, tmp_path_factory.mktemp("logs")) as running:
        yield running


@pytest.fixture(scope="session")
def gateway(shop):
    with httpx.Client(base_url=shop.url, timeout=10) as client:
        yield client
