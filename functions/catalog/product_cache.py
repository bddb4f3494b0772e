"""Products and pages of products as this instance last read them, answered again for PRODUCT_CACHE_TTL_SECONDS
without the store: single products (GET /products/{id}) and whole answers of listings and searches (a page's
JSON and ETag, keyed by its validated query and whether inactive products are included).

The staleness bound: an answer from here is at most the TTL older than the store. A write through this process
(`store.update`, `store.insert`) forgets the product and every page at once; a write anywhere else (another
replica, the stock functions: in a deployment every write) shows here within the TTL. Reservations never read
from here: stock is only ever taken by the store's conditional updates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from shared.settings import CatalogSettings, settings

PAGE_BYTES = 16 * 2**20  # the pages kept take at most this much memory; the oldest read goes first


@dataclass(frozen=True, slots=True)
class CachedProduct:
    """A product ready to answer: its public JSON, its version and whether customers may see it."""

    body: bytes
    version: int
    is_active: bool
    read_at: float  # time.monotonic() when it was read from the store

    def age(self) -> float:
        return time.monotonic() - self.read_at


@dataclass(frozen=True, slots=True)
class CachedPage:
    """A listing or search answer ready to send: its JSON and the strong ETag of that JSON."""

    body: bytes
    etag: str
    read_at: float

    def age(self) -> float:
        return time.monotonic() - self.read_at


_entries: dict[str, CachedProduct] = {}
_pages: dict[tuple, CachedPage] = {}
_page_bytes = 0
_writes = 0  # writes through this process so far: a read that overlapped one is not kept


def writes() -> int:
    """Take this before reading the store; hand it to `put` so a read that raced a local write is not kept."""
    return _writes


def ttl() -> float:
    return settings(CatalogSettings).product_cache_ttl_seconds


def get(product_id: str) -> CachedProduct | None:
    """The product as read less than the TTL ago, else None."""
    entry = _entries.get(product_id)
    if entry is not None and entry.age() >= ttl():
        del _entries[product_id]
        return None
    return entry


def put(product_id: str, product: CachedProduct, writes_before: int) -> None:
    config = settings(CatalogSettings)
    if config.product_cache_ttl_seconds == 0 or writes_before != _writes:
        return
    _entries.pop(product_id, None)
    while len(_entries) >= config.product_cache_max_entries:
        del _entries[next(iter(_entries))]  # the oldest read goes first: it expires first anyway
    _entries[product_id] = product


def get_page(key: tuple) -> CachedPage | None:
    """The page as read less than the TTL ago, else None."""
    page = _pages.get(key)
    if page is not None and page.age() >= ttl():
        _drop_page(key)
        return None
    return page


def put_page(key: tuple, page: CachedPage, writes_before: int) -> None:
    global _page_bytes
    config = settings(CatalogSettings)
    if config.product_cache_ttl_seconds == 0 or writes_before != _writes or len(page.body) > PAGE_BYTES:
        return
    _drop_page(key)
    while _pages and (len(_pages) >= config.product_cache_max_entries or _page_bytes + len(page.body) > PAGE_BYTES):
        _drop_page(next(iter(_pages)))
    _pages[key] = page
    _page_bytes += len(page.body)


def _drop_page(key: tuple) -> None:
    global _page_bytes
    page = _pages.pop(key, None)
    if page is not None:
        _page_bytes -= len(page.body)


def forget(product_id: str | None = None) -> None:
    """A write through this process changed the product (None: added some): the next read of it, and of
    every page, goes to the store."""
    global _writes, _page_bytes
    _writes += 1
    if product_id is not None:
        _entries.pop(product_id, None)
    _pages.clear()
    _page_bytes = 0
