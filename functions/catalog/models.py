"""Catalog request and response models: one class per purpose."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    field_validator,
    model_validator,
)

from functions.catalog import cursor
from shared.catalog_contract import MAX_LOOKUP, Sku
from shared.fields import QueryFlag, trimmed, whole_number
from shared.http_cache import entity_tags
from shared.model import Model
from shared.money import Money, PriceBound

Text = trimmed(1, 200)
Label = trimmed(1, 50, lower=True)
PRODUCT_ID_PATTERN = r"^[0-9a-fA-F]{24}$"  # a MongoDB ObjectId in hex; any other id names no product (404)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_URL_CHARACTER = r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]"
# http(s), a host name (its last label starts with a letter, so it is never read as an IPv4 address), an optional
# port, path and query: every such string is also a valid URL to pydantic's HttpUrl, which normalises it.
IMAGE_URL_PATTERN = (rf"^https?://(?:{_LABEL}\.)*[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?(?::{_PORT})?"
                     rf"(?:/{_URL_CHARACTER}*)?(?:\?(?:{_URL_CHARACTER}|\?)*)?$")


def _http_url(value: str) -> str:
    return str(HttpUrl(value))


ImageUrl = Annotated[str, StringConstraints(max_length=2048, pattern=IMAGE_URL_PATTERN), AfterValidator(_http_url),
                     Field(description="An http or https URL with a host name (no user info or IP address), "
                                       "answered normalised")]
MAX_STOCK = 1_000_000
StockQuantity = whole_number(0, MAX_STOCK)


class Attribute(Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    key: trimmed(1, 50)
    value: Annotated[str, StringConstraints(max_length=200)]


class _ProductFields(Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Text
    description_short: Annotated[str, StringConstraints(max_length=500)] = ""
    description_long: Annotated[str, StringConstraints(max_length=5000)] = ""
    price: Money
    categories: Annotated[list[Label], Field(max_length=10)] = []
    brand: Text
    stock_quantity: StockQuantity = 0
    images: Annotated[list[ImageUrl], Field(max_length=20)] = []
    attributes: Annotated[list[Attribute], Field(max_length=50)] = []
    is_active: bool = True
    tags: Annotated[list[Label], Field(max_length=30)] = []


class ProductCreate(_ProductFields):
    sku: Sku


def _sent_fields_only(schema: dict) -> None:
    """ProductUpdate as the document states it: a field is sent with a value or not at all (null is refused),
    at least one is sent, and never both stock fields."""
    for spec in schema["properties"].values():
        spec.pop("default", None)
        choices = spec.pop("anyOf", None)
        if choices is not None:
            spec |= next(choice for choice in choices if choice.get("type") != "null")
    schema["minProperties"] = 1
    schema["not"] = {"required": ["stock_quantity", "stock_adjustment"]}


class ProductUpdate(Model):
    """A partial update: only the fields sent change, each validated as on create. The SKU never changes.

    Stock changes either by `stock_adjustment` (added atomically, so it never loses a concurrent reservation) or
    by an absolute `stock_quantity`, which the endpoint accepts only with `If-Match` naming the current version.
    """

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_sent_fields_only)

    name: Text | None = None
    description_short: Annotated[str, StringConstraints(max_length=500)] | None = None
    description_long: Annotated[str, StringConstraints(max_length=5000)] | None = None
    price: Money | None = None
    categories: Annotated[list[Label], Field(max_length=10)] | None = None
    brand: Text | None = None
    stock_quantity: StockQuantity | None = Field(default=None, description=(
        "The absolute stock: only with an If-Match header naming the current ETag (428 without it, 412 when stale)"))
    stock_adjustment: whole_number(-MAX_STOCK, MAX_STOCK, description=(
        "Units to add (positive) or remove (negative), never 0, applied atomically; "
        "refused (409) when stock would leave 0..1000000"), json_schema_extra={"not": {"const": 0}}) | None = None
    images: Annotated[list[ImageUrl], Field(max_length=20)] | None = None
    attributes: Annotated[list[Attribute], Field(max_length=50)] | None = None
    is_active: bool | None = None
    tags: Annotated[list[Label], Field(max_length=30)] | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ProductUpdate:
        sent = self.model_dump(exclude_unset=True)
        if not sent:
            raise ValueError("send at least one field to change")
        nulls = [name for name, value in sent.items() if value is None]
        if nulls:
            raise ValueError(f"these fields cannot be null: {', '.join(nulls)}")
        if "stock_quantity" in sent and "stock_adjustment" in sent:
            raise ValueError("send either stock_quantity or stock_adjustment, not both")
        return self

    @field_validator("stock_adjustment")
    @classmethod
    def _not_zero(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("a stock adjustment must not be zero")
        return value


class ProductPublic(_ProductFields):
    model_config = ConfigDict(extra="ignore")

    id: str
    sku: str
    images: list[str] = []  # validated when written; re-parsing every URL on each read cost a tenth of a GET
    # As stored: stock given back by a release may lift it past MAX_STOCK (an admin set it while units were held).
    stock_quantity: Annotated[int, Field(ge=0)] = 0
    created_at: datetime
    updated_at: datetime


MAX_COUNTED = 10_000  # a listing counts its matches up to this many: the count's cost stays bounded
MIN_SEARCH_LENGTH = 2  # one character matches nearly every product: nothing worth ranking
SEARCH_CANDIDATES = 1000  # a search scores and sorts at most this many matches


class ProductPage(Model):
    items: list[ProductPublic]
    total: int = Field(description=f"The matching products, counted up to {MAX_COUNTED} (a listing) or "
                                   f"{SEARCH_CANDIDATES} (a search)")
    total_exact: bool = Field(description="false when more products match than `total` counted")
    limit: int
    offset: int
    next: str | None = Field(default=None, description=(
        "Listing only: pass as `after` (with the same filters and sort) for the page that follows; null on the "
        "last page"))


SortKey = Literal["price", "-price", "name", "-created_at"]


class _Paging(Model):
    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=100_000)] = 0


class ProductQuery(_Paging):
    category: Label | None = None
    brand: Text | None = None
    tag: Label | None = None
    min_price: PriceBound | None = None
    max_price: PriceBound | None = Field(default=None, description="not below min_price (422)")
    in_stock: QueryFlag | None = None
    sort: SortKey = "-created_at"
    after: Annotated[str, StringConstraints(max_length=300)] | None = Field(default=None, description=(
        "The `next` of the previous page: keyset paging, as cheap on the last page as on the first (not with "
        "offset)"))

    @model_validator(mode="after")
    def _price_range(self) -> ProductQuery:
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError("min_price must not exceed max_price")
        return self

    @model_validator(mode="after")
    def _cursor(self) -> ProductQuery:
        if self.after is not None:
            if self.offset:
                raise ValueError("send either after or offset, not both")
            cursor.decode(self.after, self.sort)
        return self


class SearchQuery(_Paging):
    q: trimmed(MIN_SEARCH_LENGTH, 100, examples=["coffee"])
    offset: Annotated[int, Field(ge=0, lt=SEARCH_CANDIDATES, description=(
        f"Search ranks the first {SEARCH_CANDIDATES} matches: a narrower term finds what lies beyond"))] = 0


class LookupQuery(Model):
    """`skus=A,B,C`: at most 100 distinct SKUs, each well-formed."""

    model_config = ConfigDict(extra="forbid")

    skus: Annotated[list[Sku], Field(min_length=1, max_length=MAX_LOOKUP)]

    @field_validator("skus", mode="before")
    @classmethod
    def _split(cls, value):
        return list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip())) \
            if isinstance(value, str) else value


# ETags: a product's version (incremented by every write of its document) as the strong tag `"v<version>"`.
# Documents written before versions existed have none: they are version 0.
_VERSION_TAG = re.compile(r"v(0|[1-9][0-9]{0,17})")  # at most 18 digits: always a BSON int64


def etag(version: int) -> str:
    return f'"v{version}"'


def _version(tag: str) -> int | None:
    matched = _VERSION_TAG.fullmatch(tag)
    return int(matched.group(1)) if matched else None


def if_match_versions(header: str | None) -> frozenset[int] | None:
    """The versions an `If-Match` accepts (strong comparison: weak tags never match); None when it accepts any
    version (absent, or `*`). A malformed header or tags we never issued accept no version: 412."""
    if header is None or header.strip() == "*":
        return None
    return frozenset(version for weak, tag in entity_tags(header)
                     if not weak and (version := _version(tag)) is not None)


def change_fingerprint(changes: ProductUpdate, if_match: str | None) -> str:
    """What makes a keyed PATCH the same change when sent again: the fields sent (as validated) and the If-Match
    header as sent (absent and `*` differ: a retry repeats its request byte for byte)."""
    sent = changes.model_dump_json(exclude_unset=True) + "\n" + ("-" if if_match is None else f"={if_match}")
    return hashlib.sha256(sent.encode()).hexdigest()[:32]
