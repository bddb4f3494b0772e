"""Load the demo catalog: `make seed` adds the products whose SKU is missing; `make up` seeds an empty store."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

from functions.catalog import store
from functions.catalog.models import ProductCreate
from local.config import local_setting

DEMO_CATALOG = Path(__file__).with_name("demo_catalog.json")


def demo_products() -> list[ProductCreate]:
    return [ProductCreate.model_validate(item, strict=False) for item in json.loads(DEMO_CATALOG.read_text())]


async def seed(only_if_empty: bool = False) -> int:
    """Insert the demo products that are not in the store yet; returns how many were added."""
    if only_if_empty and await store.count() > 0:
        return 0
    collection = await store.products()
    present = {document["sku"] async for document in collection.find({}, {"sku": 1})}
    missing = [product for product in demo_products() if product.sku not in present]
    return await store.insert_many(missing) if missing else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--if-empty", action="store_true", help="seed only when the catalog has no products")
    options = parser.parse_args()
    for name in ("MONGODB_URL", "MONGODB_DATABASE"):
        os.environ.setdefault(name, local_setting(name))
    added = asyncio.run(seed(options.if_empty))
    print(f"demo catalog: {added} products added")


if __name__ == "__main__":
    main()
