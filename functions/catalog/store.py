"""MongoDB access for the catalog: the only module of the domain that knows documents and queries."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from bson import Decimal128, ObjectId
from bson.codec_options import CodecOptions
import pymongo
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, ExecutionTimeout, NetworkTimeout

from functions.catalog import cursor, product_cache, rendered
from functions.catalog.models import (
    MAX_COUNTED,
    MAX_STOCK,
    SEARCH_CANDIDATES,
    ProductCreate,
    ProductPublic,
    ProductQuery,
    ProductUpdate,
    SearchQuery,
    etag,
)
from functions.catalog.product_cache import CachedPage, CachedProduct
from shared.catalog_contract import CatalogItem
from shared.errors import Conflict, IdempotencyKeyReused, NotFound, PreconditionFailed, ServiceUnavailable
from shared.faults import fault_point
from shared.http_cache import body_etag
from shared.money import Money
from shared.mongo import collection, require_mongo
from shared.settings import CatalogSettings, settings

# Where a search term is found, and what a match there is worth: the name outranks everything else.
_SEARCH_WEIGHTS = {"name": 10, "brand": 4, "tags": 4, "description_short": 2, "description_long": 1}
# Reads for a response leave out what responses never show: the reservation ids holding stock and their reserve
# calls' tokens (see stock.py), and the Idempotency-Keys of applied changes (see update).
WITHOUT_HOLDS = {"holds": 0, "hold_tokens": 0}
PUBLIC_FIELDS = {**WITHOUT_HOLDS, "change_keys": 0}
# The catalog's indexes, created by the deploy step (`make migrate`, the shop-migrate Job), never by a request.
# Raise SCHEMA_VERSION with any change to create_indexes: functions then answer 503 until the step has run.
SCHEMA_VERSION = 2  # 2: the `holds` index the reservation sweep pages through


async def create_indexes() -> None:
    """Every index of the catalog's collections (idempotent)."""
    await ensure_indexes(collection("products"))
    await collection("stock_reservations").create_index([("state", ASCENDING), ("expires_at", ASCENDING)],
                                                        name="state_expiry")


def _listing_indexes() -> list[IndexModel]:
    """One index per listing order, alone and after a category: each page of `GET /products` (and
    `?category=`) walks one in order (backwards for the reversed sort) and stops after its limit."""
    orders = {keys[0][0]: [(field, direction * keys[0][1]) for field, direction in keys]
              for keys in cursor.SORTS.values()}  # "price" and "-price" share one index
    return [IndexModel([*prefix, *keys], name=f"{name}_by_{field.split('.')[0]}")
            for name, prefix in (("listing", [("is_active", ASCENDING)]),
                                 ("category", [("categories", ASCENDING), ("is_active", ASCENDING)]))
            for field, keys in orders.items()]


# Every index the catalog's queries need, in one place for the deploy step.
INDEXES = [
    IndexModel("sku", unique=True, name="sku_unique"),
    *_listing_indexes(),
    IndexModel([("brand_key", ASCENDING)], name="brand"),
    IndexModel([("tags", ASCENDING)], name="tags"),
    IndexModel([("price.amount", ASCENDING)], name="price"),
    # The reservation sweep's products holding stock (stock.HELD): only those, however large the catalog.
    IndexModel([("holds", ASCENDING)], name="holds"),
]
RETIRED_INDEXES = ("listing", "category_price")  # replaced by the listing indexes above


async def ensure_indexes(products_collection: AsyncCollection) -> None:
    """Create the catalog's indexes and drop the ones it no longer uses (idempotent)."""
    present = {index["name"] async for index in await products_collection.list_indexes()}
    for name in present.intersection(RETIRED_INDEXES):
        await products_collection.drop_index(name)
    await products_collection.create_indexes(INDEXES)


async def products() -> AsyncCollection:
    """The products collection, once the deploy step has created the catalog's indexes (checked once per process)."""
    await require_mongo("catalog", SCHEMA_VERSION)
    return collection("products")


async def _raw_products() -> tuple[AsyncCollection, CodecOptions]:
    """`products()` answering RawBSONDocument, for reads that `_rendered` renders, and the options that decode a
    document as `products()` would have."""
    plain = await products()
    return collection("products", raw=True), plain.codec_options


def _public_json(document: dict) -> bytes:
    return to_public(document).model_dump_json().encode()


def _rendered(raw, options: CodecOptions) -> rendered.Rendered:
    """A product read raw, as a response shows it: rendered once per exact stored content."""
    return rendered.rendered(raw, options, _public_json)


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


# Stored amount (its two 64-bit halves) -> its Decimal: bson's to_decimal costs ~7 µs in Python, and a page
# holds few distinct prices.
_AMOUNTS: dict[tuple[int, int], Decimal] = {}
_MAX_AMOUNTS = 4096


def _amount(stored: Decimal128) -> Decimal:
    bits = stored.__getstate__()
    amount = _AMOUNTS.get(bits)
    if amount is None:
        if len(_AMOUNTS) >= _MAX_AMOUNTS:
            _AMOUNTS.clear()
        amount = _AMOUNTS[bits] = stored.to_decimal()
    return amount


def stored_price(stored: dict) -> Money:
    return Money.model_construct(amount=_amount(stored["amount"]), currency=stored["currency"])


def to_public(document: dict) -> ProductPublic:
    return ProductPublic.model_validate({**document, "id": str(document["_id"]), "price": stored_price(document["price"])},
                                        strict=False)


@dataclass(frozen=True, slots=True)
class FoundPage:
    """A listing's or search's page: each product's public JSON and the rest of ProductPage, its response model."""

    items: list[bytes]
    total: int
    total_exact: bool
    limit: int
    offset: int
    next: str | None = None

    def body(self) -> bytes:
        """Byte for byte ProductPage(...).model_dump_json() of this page."""
        return rendered.page_body(self.items, total=self.total, total_exact=self.total_exact, limit=self.limit,
                                  offset=self.offset, next=self.next)


@dataclass(frozen=True, slots=True)
class StoredProduct:
    """A product document as read or written, with its version: every write of the document increments it."""

    document: dict

    @property
    def version(self) -> int:
        return self.document.get("version", 0)  # written before versions existed

    def public(self) -> ProductPublic:
        return to_public(self.document)


def new_document(product: ProductCreate, now: datetime) -> dict:
    return _to_document(product.model_dump()) | {"created_at": now, "updated_at": now, "version": 1}


async def insert(product: ProductCreate) -> StoredProduct:
    document = new_document(product, _now())
    try:
        result = await (await products()).insert_one(document)
    except DuplicateKeyError:
        raise await _duplicate_sku(product.sku) from None
    finally:
        product_cache.forget()  # a new product may belong on any page
    document["_id"] = result.inserted_id
    return StoredProduct(document)


async def _duplicate_sku(sku: str) -> Conflict:
    """The SKU is taken: the refusal names the product that has it, so a create retried after its 201 was lost
    finds the product it made."""
    existing = await (await products()).find_one({"sku": sku}, {"_id": 1})
    if existing is None:  # deleted since: only a concurrent admin could; the caller may simply retry
        return Conflict(f"A product with sku '{sku}' already exists")
    product_id = str(existing["_id"])
    return Conflict(f"A product with sku '{sku}' already exists: /products/{product_id}",
                    extensions={"product_id": product_id}, headers={"Location": f"/products/{product_id}"})


def _version_filter(versions: frozenset[int]) -> dict:
    # In MongoDB `$in: [None]` also matches a missing field: a document without a version is version 0.
    return {"version": {"$in": sorted(versions) + ([None] if 0 in versions else [])}}


# How many keyed changes (PATCH with Idempotency-Key) a product remembers: a retry after more keyed changes of
# the same product than this would apply again.
KEYS_KEPT = 100


async def update(product_id: str, changes: ProductUpdate, *, versions: frozenset[int] | None,
                 keyed: tuple[tuple[str, ...], str] | None = None) -> tuple[StoredProduct, bool]:
    """Apply the changes in one conditional write: only at one of `versions` (None: any), with `stock_adjustment`
    only while stock stays within 0..MAX_STOCK, and, `keyed` (keys, fingerprint), only if the product has recorded
    none of the keys — the same write records the first (the others: how an earlier release spelled it). Every
    write increments the version. Answers the product and whether the key's change had been applied before (a
    replay: nothing written now)."""
    fields = changes.model_dump(exclude_unset=True)
    adjustment = fields.pop("stock_adjustment", None)
    query: dict = {"_id": _object_id(product_id)}
    if versions is not None:
        query |= _version_filter(versions)
    increments = {"version": 1}
    if adjustment is not None:
        query["stock_quantity"] = {"$gte": -adjustment} if adjustment < 0 else {"$lte": MAX_STOCK - adjustment}
        increments["stock_quantity"] = adjustment
    write: dict = {"$set": _to_document(fields) | {"updated_at": _now()}, "$inc": increments}
    keys, fingerprint = keyed or ((), None)
    if keys:
        query["change_keys.k"] = {"$nin": list(keys)}
        write["$push"] = {"change_keys": {"$each": [{"k": keys[0], "f": fingerprint}], "$slice": -KEYS_KEPT}}
    try:
        document = await (await products()).find_one_and_update(
            query, write, projection=PUBLIC_FIELDS, return_document=ReturnDocument.AFTER)
    finally:  # an update whose reply was lost may still have been applied
        product_cache.forget(str(query["_id"]))
    if document is not None:
        await fault_point("catalog.update.after-write")
        return StoredProduct(document), False
    current = await (await products()).find_one({"_id": query["_id"]}, WITHOUT_HOLDS)
    if current is None:
        raise NotFound(f"No product with id '{product_id}'")
    recorded = {entry["k"]: entry["f"] for entry in current.pop("change_keys", ())}
    for key in keys:
        if key in recorded:
            if recorded[key] != fingerprint:
                raise IdempotencyKeyReused("a different change of this product")
            return StoredProduct(current), True
    raise _update_refusal(current, versions, adjustment)


def _update_refusal(current: dict, versions: frozenset[int] | None, adjustment: int | None) -> Exception:
    """Why a conditional update matched nothing, from the product as it was read just after."""
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
    product = product_cache.products.get(key)
    cached = product is not None
    if product is None:
        writes_before, read_at = product_cache.writes(), time.monotonic()
        raw_products, options = await _raw_products()
        document = await raw_products.find_one({"_id": object_id}, PUBLIC_FIELDS)
        if document is None:
            raise NotFound(f"No product with id '{product_id}'")
        found = _rendered(document, options)
        product = CachedProduct(found.body, found.version, found.is_active, read_at)
        product_cache.products.put(key, product, writes_before)
    if not (product.is_active or include_inactive):
        raise NotFound(f"No product with id '{product_id}'")
    return product, cached


async def _page(key: tuple, produce) -> tuple[CachedPage, bool]:
    """The answer for `key` from this instance's cache (read less than the TTL ago, see product_cache), else
    from `produce()`, kept for the next caller; and whether it came from the cache."""
    page = product_cache.pages.get(key)
    if page is not None:
        return page, True
    writes_before, read_at = product_cache.writes(), time.monotonic()
    body = (await produce()).body()
    page = CachedPage(body, body_etag(body), read_at)
    product_cache.pages.put(key, page, writes_before)
    return page, False


async def listing(query: ProductQuery, *, include_inactive: bool) -> tuple[CachedPage, bool]:
    """The page `find` answers, possibly from this instance's cache."""
    return await _page(("list", include_inactive, query.model_dump_json()),
                       lambda: find(query, include_inactive=include_inactive))


async def searched(query: SearchQuery, *, include_inactive: bool) -> tuple[CachedPage, bool]:
    """The page `search` answers, possibly from this instance's cache."""
    return await _page(("search", include_inactive, query.model_dump_json()),
                       lambda: search(query, include_inactive=include_inactive))


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
        # Inside `$and`, which MongoDB plans exactly as the bare field: SecantusDB 0.7's compound-index range
        # scan drops documents equal to an inclusive upper bound when fields follow the ranged one (`_id` here).
        conditions["$and"] = [{"price.amount": price}]
    if query.in_stock is True:
        conditions["stock_quantity"] = {"$gt": 0}
    elif query.in_stock is False:
        conditions["stock_quantity"] = 0
    return conditions


async def find(query: ProductQuery, *, include_inactive: bool) -> FoundPage:
    """A page in a listing index's order (sort, skip, limit: never the whole matching set sorted in memory) and
    a count that stops at MAX_COUNTED; `after` pages by keyset, skipping nothing."""
    conditions = _filters(query, include_inactive)
    page = conditions if query.after is None else \
        {"$and": [conditions, cursor.after(query.sort, *cursor.decode(query.after, query.sort))]}
    collection, options = await _raw_products()
    documents = await collection.find(page, PUBLIC_FIELDS).sort(cursor.SORTS[query.sort]).skip(query.offset) \
        .limit(query.limit + 1).to_list()
    items = documents[:query.limit]
    if query.after is None and len(documents) <= query.limit and (items or not query.offset):
        counted = query.offset + len(items)  # the last page by offset: it ends the selection, no count needed
    else:
        counted = await (await products()).count_documents(conditions, limit=MAX_COUNTED + 1)
    return FoundPage(items=[_rendered(d, options).body for d in items], total=min(counted, MAX_COUNTED),
                     total_exact=counted <= MAX_COUNTED, limit=query.limit, offset=query.offset,
                     next=cursor.encode(query.sort, items[-1]) if len(documents) > query.limit else None)


def _matches(field: str, pattern: str) -> dict:
    if field == "tags":
        return {"$anyElementTrue": [{"$map": {"input": {"$ifNull": ["$tags", []]},
                                              "in": {"$regexMatch": {"input": "$$this", "regex": pattern, "options": "i"}}}}]}
    return {"$regexMatch": {"input": {"$ifNull": [f"${field}", ""]}, "regex": pattern, "options": "i"}}


class SearchTimedOut(ServiceUnavailable):
    slug, title = "search-timeout", "Search Timed Out"


async def search(query: SearchQuery, *, include_inactive: bool) -> FoundPage:
    """Relevance-ordered search; the one place to switch to a text index on a real MongoDB deployment.

    Its cost: the store tests every product's text fields (no index serves a substring match), stopped by the
    server after SEARCH_MAX_TIME_MS (then 503 `search-timeout`); only the first SEARCH_CANDIDATES matches are
    scored and sorted, so a broad term costs no more to rank than a narrow one."""
    pattern = re.escape(query.q)  # user input is matched literally, never as a regex
    match: dict = {"$or": [{field: {"$regex": pattern, "$options": "i"}} for field in _SEARCH_WEIGHTS]}
    if not include_inactive:
        match = {"$and": [{"is_active": True}, match]}
    score = {"$add": [{"$cond": [_matches(field, pattern), weight, 0]} for field, weight in _SEARCH_WEIGHTS.items()]}
    pipeline = [{"$match": match}, {"$limit": SEARCH_CANDIDATES + 1}, {"$facet": {
        "items": [{"$addFields": {"_score": score}}, {"$sort": {"_score": DESCENDING, "name": ASCENDING, "_id": ASCENDING}},
                  {"$skip": query.offset}, {"$limit": query.limit}, {"$project": {"_score": 0, **PUBLIC_FIELDS}}],
        "total": [{"$count": "n"}],
    }}]
    budget = settings(CatalogSettings).search_max_time_ms
    raw_products, options = await _raw_products()
    try:
        # The budget is the search's deadline: pymongo sends what is left of it as maxTimeMS and waits no longer.
        with pymongo.timeout(budget / 1000):
            [result] = await (await raw_products.aggregate(pipeline)).to_list()
    except (ExecutionTimeout, NetworkTimeout):  # the server's limit, or the wait for its answer; not a store that is down
        raise SearchTimedOut(f"The search took longer than its limit ({budget} ms); try a more specific term") \
            from None
    counted = result["total"][0]["n"] if result["total"] else 0
    return FoundPage(items=[_rendered(d, options).body for d in result["items"]],
                     total=min(counted, SEARCH_CANDIDATES), total_exact=counted <= SEARCH_CANDIDATES,
                     limit=query.limit, offset=query.offset)


async def lookup(skus: list[str]) -> list[CatalogItem]:
    """The products with these SKUs, active or not (callers decide what inactive means for them)."""
    projection = {"sku": 1, "name": 1, "price": 1, "stock_quantity": 1, "is_active": 1}
    found = (await products()).find({"sku": {"$in": skus}}, projection)
    return [CatalogItem(sku=d["sku"], id=str(d["_id"]), name=d["name"], stock_quantity=d["stock_quantity"],
                        is_active=d["is_active"], price=stored_price(d["price"])) async for d in found]


async def count() -> int:
    return await (await products()).estimated_document_count()


BULK_SECONDS = 120


async def insert_many(items: list[ProductCreate]) -> int:
    now = _now()
    documents = [new_document(item, now) for item in items]
    collection_ = await products()  # reached under MONGODB_TIMEOUT_MS, not the bulk's deadline
    try:
        with pymongo.timeout(BULK_SECONDS):  # a seed's thousands of documents outlast a request's MONGODB_TIMEOUT_MS
            result = await collection_.insert_many(documents, ordered=False)
    finally:
        product_cache.forget()
    return len(result.inserted_ids)
