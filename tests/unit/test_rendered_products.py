"""functions/catalog/rendered.py: a product's public JSON rendered once per exact stored document, and pages
spliced from those fragments byte for byte as ProductPage writes them."""

from __future__ import annotations

from datetime import datetime, timezone

import bson
import pytest
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from functions.catalog import rendered, store
from functions.catalog.models import ProductCreate, ProductPage

OPTIONS = CodecOptions(tz_aware=True)  # as the shop's client decodes documents


@pytest.fixture(autouse=True)
def empty_memory():
    rendered.clear()
    yield
    rendered.clear()


def stored(number: int = 1, **changes) -> dict:
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    document = store.new_document(ProductCreate(
        sku=f"R-{number}", name=f'Tasse "☕" {number}', brand="Acme", categories=["mugs"], stock_quantity=5,
        price={"amount": "12.50", "currency": "EUR"}, description_long="Stoneware\n" * 3), now)
    return {"_id": ObjectId(), **document, **changes}


def read_raw(document: dict) -> RawBSONDocument:
    """The document as a raw read answers it: a new object (and new bytes) on every read."""
    return RawBSONDocument(bytes(bson.encode(document)), OPTIONS.with_options(document_class=RawBSONDocument))


def public_json(document: dict) -> bytes:
    return store.to_public(bson.decode(bson.encode(document), OPTIONS)).model_dump_json().encode()


def test_a_product_is_rendered_once_per_exact_stored_document(monkeypatch):
    renders = []
    monkeypatch.setattr(store, "_public_json", lambda document: renders.append(document) or public_json(document))
    document = stored()

    first, again = store._rendered(read_raw(document), OPTIONS), store._rendered(read_raw(document), OPTIONS)
    reserved = store._rendered(read_raw(document | {"stock_quantity": 4}), OPTIONS)  # a reservation elsewhere

    assert first is again and len(renders) == 2
    assert first.body == public_json(document) and (first.version, first.is_active) == (1, True)
    assert reserved.body == public_json(document | {"stock_quantity": 4}) and b'"stock_quantity":4' in reserved.body


def test_the_rendered_products_stay_within_their_memory(monkeypatch):
    monkeypatch.setattr(rendered, "MEMORY_BYTES", 4000)
    documents = [stored(number) for number in range(6)]

    for document in documents:
        assert store._rendered(read_raw(document), OPTIONS).body == public_json(document)

    assert 0 < len(rendered._rendered) < len(documents) and rendered._bytes <= 4000
    assert rendered._bytes == sum(len(key) + len(value.body) for key, value in rendered._rendered.items())


@pytest.mark.parametrize("next_", [None, "WyJuYW1lIiwiVGFzc2UiLCJhYmMiXQ"])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_a_page_body_is_byte_for_byte_what_product_page_writes(next_, count):
    documents = [stored(number) for number in range(count)]
    page = store.FoundPage(items=[store._rendered(read_raw(d), OPTIONS).body for d in documents], total=1234,
                           total_exact=False, limit=10, offset=20, next=next_)

    expected = ProductPage(items=[store.to_public(bson.decode(bson.encode(d), OPTIONS)) for d in documents],
                           total=1234, total_exact=False, limit=10, offset=20, next=next_)
    assert page.body() == expected.model_dump_json().encode()
