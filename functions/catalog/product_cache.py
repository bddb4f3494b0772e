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


class _Memory:
    """Entries read from the store less than the TTL ago, at most PRODUCT_CACHE_MAX_ENTRIES of them (and, when
    given, `max_bytes` of bodies); the oldest read goes first: it expires first anyway."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self._entries: dict = {}
        self._bytes = 0
        self._max_bytes = max_bytes

    def get(self, key):
        """The entry as read less than the TTL ago, else None."""
        entry = self._entries.get(key)
        if entry is not None and entry.age() >= ttl():
            self._drop(key)
            return None
        return entry

    def put(self, key, entry, writes_before: int) -> None:
        config, size = settings(CatalogSettings), len(entry.body)
        if config.product_cache_ttl_seconds == 0 or writes_before != _writes or \
                (self._max_bytes is not None and size > self._max_bytes):
            return
        self._drop(key)
        while self._entries and (len(self._entries) >= config.product_cache_max_entries or
                                 (self._max_bytes is not None and self._bytes + size > self._max_bytes)):
            self._drop(next(iter(self._entries)))
        self._entries[key] = entry
        self._bytes += size

    def forget(self, key) -> None:
        self._drop(key)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.body)


products: _Memory = _Memory()  # CachedProduct by product id
pages: _Memory = _Memory(PAGE_BYTES)  # CachedPage by (kind, include_inactive, validated query)
_writes = 0  # writes through this process so far: a read that overlapped one is not kept


def writes() -> int:
    """Take this before reading the store; hand it to `put` so a read that raced a local write is not kept."""
    return _writes


def ttl() -> float:
    return settings(CatalogSettings).product_cache_ttl_seconds


def forget(product_id: str | None = None) -> None:
    """A write through this process changed the product (None: added some): the next read of it, and of
    every page, goes to the store."""
    global _writes
    _writes += 1
    if product_id is not None:
        products.forget(product_id)
    pages.clear()
