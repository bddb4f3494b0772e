"""MongoDB access for the catalog: the only module of the domain that knows documents and queries."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from bson import Decimal128, ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from functions.catalog.models import (
    MAX_STOCK,
    ProductCreate,
    ProductPage,
    ProductPublic,
    ProductQuery,
    ProductUpdate,
    SearchQuery,
    etag,
)
from functions.catalog import product_cache
from functions.catalog.product_cache import CachedProduct
from shared.catalog_contract import CatalogItem
from shared.errors import Conflict, NotFound, PreconditionFailed
from shared.money import Money
from shared.mongo import collection

_SORTS = {
    "price": [("price.amount", ASCENDING), ("_id", ASCENDING)],
    "-price": [("price.amount", DESCENDING), ("_id", ASCENDING)],
    "name": [("name", ASCENDING), ("_id", ASCENDING)],
    "-created_at": [("created_at", DESCENDING), ("_id", DESCENDING)],
}
# Where a search term is found, and what a match there is worth: the name outranks everything else.
_SEARCH_WEIGHTS = {"name": 10, "brand": 4, "tags": 4, "description_short": 2, "description_long": 1}
# Reads for a response leave out what responses never show: the reservation ids holding stock (see stock.py).
_PUBLIC_FIELDS = {"holds": 0}
_indexes_ready: set[int] = set()
_index_lock = asyncio.Lock()


async def products() -> AsyncCollection:
    """The products collection, with its indexes created once per process (idempotent)."""
    products_collection = collection("products")
    key = id(products_collection)
    if key not in _indexes_ready:
        async with _index_lock:
            if key not in _indexes_ready:
                await products_collection.create_index("sku", unique=True, name="sku_unique")
                await products_collection.create_index([("is_active", ASCENDING), ("created_at", DESCENDING)], name="listing")
                await products_collection.create_index([("categories", ASCENDING), ("price.amount", ASCENDING)],
                                                       name="category_price")
                await products_collection.create_index([("brand_key", ASCENDING)], name="brand")
                await products_collection.create_index([("tags", ASCENDING)], name="tags")
                await products_collection.create_index([("price.amount", ASCENDING)], name="price")
                _indexes_ready.add(key)
    return products_collection


def _now() -> datetime:
    """Now, at the millisecond precision BSON stores, so a created product equals the one read back."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _object_id(product_id: str) -> ObjectId:
    if not ObjectId.is_valid(product_id) or len(product_id) != 24:
        raise NotFound(f"No product with id '{product_id}'")
    return ObjectId(product_id)


def _to_document(fields: dict) -> dict:
    document = dict(fields)
    if "price" in document:
        document["price"] = {"amount": Decimal128(document["price"]["amount"]), "currency": document["price"]["currency"]}
    if "brand" in document:
        document["brand_key"] = document["brand"].lower()
    return document


def stored_price(stored: dict) -> Money:
    return Money.model_construct(amount=stored["amount"].to_decimal(), currency=stored["currency"])


def to_public(document: dict) -> ProductPublic:
    return ProductPublic.model_validate({**document, "id": str(document["_id"]), "price": stored_price(document["price"])},
                                        strict=False)


@dataclass(frozen=True, slots=True)
class StoredProduct:
    """A product document as read or written, with its version: every write of the document increments it."""

    document: dict

    @property
    def version(self) -> int:
        return self.document.get("version", 0)  # written before versions existed

    def public(self) -> ProductPublic:
        return to_public(self.document)


def _new_document(product: ProductCreate, now: datetime) -> dict:
    return _to_document(product.model_dump()) | {"created_at": now, "updated_at": now, "version": 1}


async def insert(product: ProductCreate) -> StoredProduct:
    document = _new_document(product, _now())
    try:
        result = await (await products()).insert_one(document)
    except DuplicateKeyError:
        raise Conflict(f"A product with sku '{product.sku}' already exists") from None
    document["_id"] = result.inserted_id
    return StoredProduct(document)


def _version_filter(versions: frozenset[int]) -> dict:
    # In MongoDB `$in: [None]` also matches a missing field: a document without a version is version 0.
    return {"version": {"$in": sorted(versions) + ([None] if 0 in versions else [])}}


async def update(product_id: str, changes: ProductUpdate, *, versions: frozenset[int] | None) -> StoredProduct:
    """Apply the changes in one conditional write: only at one of `versions` (None: any), and with
    `stock_adjustment` only while stock stays within 0..MAX_STOCK. Every write increments the version."""
    fields = changes.model_dump(exclude_unset=True)
    adjustment = fields.pop("stock_adjustment", None)
    query: dict = {"_id": _object_id(product_id)}
    if versions is not None:
        query |= _version_filter(versions)
    increments = {"version": 1}
    if adjustment is not None:
        query["stock_quantity"] = {"$gte": -adjustment} if adjustment < 0 else {"$lte": MAX_STOCK - adjustment}
        increments["stock_quantity"] = adjustment
    document = await (await products()).find_one_and_update(
        query, {"$set": _to_document(fields) | {"updated_at": _now()}, "$inc": increments},
        projection=_PUBLIC_FIELDS, return_document=ReturnDocument.AFTER)
    product_cache.forget(str(query["_id"]))
    if document is None:
        raise await _update_refusal(query["_id"], product_id, versions, adjustment)
    return StoredProduct(document)


async def _update_refusal(object_id: ObjectId, product_id: str, versions: frozenset[int] | None,
                          adjustment: int | None) -> Exception:
    """Why a conditional update matched nothing, from one read of the product as it is now."""
    current = await (await products()).find_one({"_id": object_id}, {"version": 1, "stock_quantity": 1, "sku": 1})
    if current is None:
        return NotFound(f"No product with id '{product_id}'")
    version = current.get("version", 0)
    if versions is not None and version not in versions:
        return PreconditionFailed(f"The product has changed: its current ETag is {etag(version)}; "
                                  "GET it again and retry with that ETag in If-Match")
    stock = current["stock_quantity"]
    if adjustment is None:  # unreachable while versions only grow; kept so a refusal is never a 500
        return Conflict("The product changed while it was being updated; retry")
    if adjustment < 0:
        message = f"Removing {-adjustment} units would drive the stock of '{current['sku']}' below zero"
    else:
        message = f"Adding {adjustment} units would take the stock of '{current['sku']}' past {MAX_STOCK}"
    return Conflict(f"{message} ({stock} in stock)", extensions={"stock_quantity": stock},
                    errors=[{"field": "body.stock_adjustment", "type": "stock_out_of_range", "message": message}])


async def read(product_id: str, *, include_inactive: bool) -> tuple[CachedProduct, bool]:
    """A product ready to answer and whether it came from this instance's cache (read less than the TTL ago,
    see product_cache); inactive products are NotFound unless `include_inactive`."""
    object_id = _object_id(product_id)
    key = str(object_id)
    product = product_cache.get(key)
    cached = product is not None
    if product is None:
        writes_before, read_at = product_cache.writes(), time.monotonic()
        document = await (await products()).find_one({"_id": object_id}, _PUBLIC_FIELDS)
        if document is None:
            raise NotFound(f"No product with id '{product_id}'")
        stored = StoredProduct(document)
        product = CachedProduct(stored.public().model_dump_json().encode(), stored.version, document["is_active"],
                                read_at)
        product_cache.put(key, product, writes_before)
    if not (product.is_active or include_inactive):
        raise NotFound(f"No product with id '{product_id}'")
    return product, cached


def _filters(query: ProductQuery, include_inactive: bool) -> dict:
    conditions: dict = {} if include_inactive else {"is_active": True}
    if query.category:
        conditions["categories"] = query.category
    if query.brand:
        conditions["brand_key"] = query.brand.lower()
    if query.tag:
        conditions["tags"] = query.tag
    price: dict = {}
    if query.min_price is not None:
        price["$gte"] = Decimal128(query.min_price)
    if query.max_price is not None:
        price["$lte"] = Decimal128(query.max_price)
    if price:
        conditions["price.amount"] = price
    if query.in_stock is True:
        conditions["stock_quantity"] = {"$gt": 0}
    elif query.in_stock is False:
        conditions["stock_quantity"] = 0
    return conditions


async def _page(pipeline_head: list[dict], sort: list[tuple[str, int]] | dict, limit: int, offset: int) -> ProductPage:
    sort_stage = {"$sort": dict(sort)}
    pipeline = [*pipeline_head, {"$facet": {
        "items": [sort_stage, {"$skip": offset}, {"$limit": limit}],
        "total": [{"$count": "n"}],
    }}]
    cursor = await (await products()).aggregate(pipeline)
    [result] = await cursor.to_list()
    total = result["total"][0]["n"] if result["total"] else 0
    return ProductPage(items=[to_public(d) for d in result["items"]], total=total, limit=limit, offset=offset)


async def find(query: ProductQuery, *, include_inactive: bool) -> ProductPage:
    return await _page([{"$match": _filters(query, include_inactive)}], _SORTS[query.sort], query.limit, query.offset)


def _matches(field: str, pattern: str) -> dict:
    if field == "tags":
        return {"$anyElementTrue": [{"$map": {"input": {"$ifNull": ["$tags", []]},
                                              "in": {"$regexMatch": {"input": "$$this", "regex": pattern, "options": "i"}}}}]}
    return {"$regexMatch": {"input": {"$ifNull": [f"${field}", ""]}, "regex": pattern, "options": "i"}}


async def search(query: SearchQuery, *, include_inactive: bool) -> ProductPage:
    """Relevance-ordered search; the one place to switch to a text index on a real MongoDB deployment."""
    pattern = re.escape(query.q)  # user input is matched literally, never as a regex
    match: dict = {"$or": [{field: {"$regex": pattern, "$options": "i"}} for field in _SEARCH_WEIGHTS]}
    if not include_inactive:
        match = {"$and": [{"is_active": True}, match]}
    score = {"$add": [{"$cond": [_matches(field, pattern), weight, 0]} for field, weight in _SEARCH_WEIGHTS.items()]}
    head = [{"$match": match}, {"$addFields": {"_score": score}}]
    return await _page(head, {"_score": DESCENDING, "name": ASCENDING, "_id": ASCENDING}, query.limit, query.offset)


async def lookup(skus: list[str]) -> list[CatalogItem]:
    """The products with these SKUs, active or not (callers decide what inactive means for them)."""
    projection = {"sku": 1, "name": 1, "price": 1, "stock_quantity": 1, "is_active": 1}
    cursor = (await products()).find({"sku": {"$in": skus}}, projection)
    return [CatalogItem(sku=d["sku"], id=str(d["_id"]), name=d["name"], stock_quantity=d["stock_quantity"],
                        is_active=d["is_active"], price=stored_price(d["price"])) async for d in cursor]


async def count() -> int:
    return await (await products()).estimated_document_count()


async def insert_many(items: list[ProductCreate]) -> int:
    now = _now()
    documents = [_new_document(item, now) for item in items]
    result = await (await products()).insert_many(documents, ordered=False)
    return len(result.inserted_ids)
