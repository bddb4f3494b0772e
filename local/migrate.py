"""`make migrate`, the shop-migrate Job, and the local runner's and tests' first step: the deploy's migration step.

It applies the PostgreSQL migrations to DATABASE_URL, creates the catalog's MongoDB indexes on MONGODB_URL and
records the catalog's schema version there. Functions only check both (shared/schema.py) and answer 503 naming
this step until it has run. Idempotent; safe to run again and from several places at once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from local.config import local_setting
from local.processes import ROOT

INDEX_BUILD_SECONDS = 240  # within run_step's 300 s and the deploy's `kubectl wait` of 300 s


async def index_catalog() -> int:
    """Create the catalog's indexes, then record their version (never lowering one a newer image recorded)."""
    import pymongo

    from functions.catalog import store

    from shared.mongo import MONGO_MARKERS, collection

    # Reached first under MONGODB_TIMEOUT_MS: under pymongo.timeout, server selection would wait as long as it.
    await collection(MONGO_MARKERS).find_one({"_id": "catalog"})
    with pymongo.timeout(INDEX_BUILD_SECONDS):  # a big catalog's index builds outlast a request's MONGODB_TIMEOUT_MS
        await store.create_indexes()
        return await record_catalog_version()


async def record_catalog_version() -> int:
    """Record that the catalog's indexes are at this image's version (benchmarks that build only some call it)."""
    from functions.catalog import store
    from shared.mongo import MONGO_MARKERS, collection

    await collection(MONGO_MARKERS).update_one({"_id": "catalog"}, {"$max": {"version": store.SCHEMA_VERSION}},
                                               upsert=True)
    return store.SCHEMA_VERSION


def main() -> None:
    for name in ("DATABASE_URL", "MONGODB_URL", "MONGODB_DATABASE"):
        os.environ.setdefault(name, local_setting(name))
    from local.stores import ensure_postgres
    from shared.postgres import Pool, migrate

    ensure_postgres(os.environ["DATABASE_URL"])
    # Unnamed statements only: right whether DATABASE_URL is PostgreSQL or a transaction-pooling PgBouncer.
    applied = migrate(Pool(os.environ["DATABASE_URL"], timeout=10, pooler="transaction"))
    print(f"PostgreSQL migrations: {', '.join(applied) if applied else 'already up to date'}")
    from pymongo.errors import ConnectionFailure

    try:
        version = asyncio.run(index_catalog())
    except ConnectionFailure:
        raise SystemExit(f"MongoDB does not answer at {os.environ['MONGODB_URL']}: start it (`make up` starts "
                         "SecantusDB and migrates) or set MONGODB_URL to a running MongoDB") from None
    print(f"MongoDB: catalog indexes at version {version}")


def run_step(settings: dict[str, str]) -> None:
    """Run the migration step for a shop with these settings, as its own process (like the Job), or raise."""
    result = subprocess.run([sys.executable, "-m", "local.migrate"], env={**os.environ, **settings}, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"the migration step failed:\n{result.stdout}{result.stderr}")


if __name__ == "__main__":
    main()
