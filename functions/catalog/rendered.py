"""Each product's public JSON, rendered once per exact stored document and reused by every page and read showing it.

Reads fetch products as RawBSONDocument and key the rendering by the document's full BSON bytes (all but the
`holds`, `hold_tokens` and `change_keys` no response shows): any write of the product (an edit, a stock
reservation by another instance) changes those bytes, so an entry can never answer stale content, only go unused.
Not a cache with a TTL: it holds no answer the store does not give again, byte for byte, on this read.

A page's body is its envelope as pydantic writes ProductPage (the declared response model) with the products'
JSON spliced into `items`: the same bytes as ProductPage(...).model_dump_json(), without a model per product.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from functions.catalog.models import ProductPage

MEMORY_BYTES = 8 * 2**20  # documents and their JSON kept at most; the first rendered goes first


@dataclass(frozen=True, slots=True)
class Rendered:
    """A product as a response shows it: its public JSON, its version and whether customers may see it."""

    body: bytes
    version: int
    is_active: bool


_rendered: dict[bytes, Rendered] = {}
_bytes = 0


def rendered(raw: RawBSONDocument, decoded_options: CodecOptions, render: Callable[[dict], bytes]) -> Rendered:
    """The product `raw` holds as rendered before, else `render(document)` of it decoded with `decoded_options`.

    The key is the bytes alone: every caller passes the options of the process's one client (store.products)."""
    global _bytes
    key = raw.raw
    found = _rendered.get(key)
    if found is None:
        document = bson.decode(key, decoded_options)
        found = Rendered(render(document), document.get("version", 0), document["is_active"])
        size = len(key) + len(found.body)
        while _rendered and _bytes + size > MEMORY_BYTES:
            dropped = next(iter(_rendered))
            _bytes -= len(dropped) + len(_rendered.pop(dropped).body)
        _rendered[key] = found
        _bytes += size
    return found


def clear() -> None:
    global _bytes
    _rendered.clear()
    _bytes = 0


_ITEMS = b'{"items":['


def page_body(items: list[bytes], **envelope) -> bytes:
    """ProductPage(items=…, **envelope).model_dump_json() from each item's rendered JSON."""
    rest = ProductPage.model_construct(items=[], **envelope).model_dump_json().encode()
    if not rest.startswith(_ITEMS + b"]"):
        raise RuntimeError("ProductPage's first field is no longer items: page_body must change with it")
    return _ITEMS + b",".join(items) + rest[len(_ITEMS):]
