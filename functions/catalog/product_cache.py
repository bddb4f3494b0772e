"""Products as this instance last read them, answered again for PRODUCT_CACHE_TTL_SECONDS without the store.

The staleness bound: an answer from here is at most the TTL older than the store. A write through this process
(`store.update`) forgets the product at once; a write anywhere else (another replica, the stock functions: in
a deployment every write) shows here within the TTL. Reservations never read from here: stock is only ever
taken by the store's conditional updates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from shared.settings import CatalogSettings, settings


@dataclass(frozen=True, slots=True)
class CachedProduct:
    """A product ready to answer: its public JSON, its version and whether customers may see it."""

    body: bytes
    version: int
    is_active: bool
    read_at: float  # time.monotonic() when it was read from the store

    def age(self) -> float:
        return time.monotonic() - self.read_at


_entries: dict[str, CachedProduct] = {}
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


def forget(product_id: str) -> None:
    """A write through this process changed the product: the next read goes to the store."""
    global _writes
    _writes += 1
    _entries.pop(product_id, None)
