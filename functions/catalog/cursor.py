"""Keyset paging for GET /products: `next` names the last product of a page by its sort value and id, and
`after=<next>` asks for what follows it, so a page costs the same however deep it is (no skipped documents).

A cursor is opaque to callers: base64url of `[sort, value, id]`, answered 422 when it was not made by us or was
made for another sort.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from decimal import Decimal, InvalidOperation

from bson import Decimal128, ObjectId
from bson.errors import InvalidId

# The sort of each listing order, its last key always `_id` in the same direction, so one index serves it
# both ways (and the order is total: no two products tie).
SORTS: dict[str, list[tuple[str, int]]] = {
    "price": [("price.amount", 1), ("_id", 1)],
    "-price": [("price.amount", -1), ("_id", -1)],
    "name": [("name", 1), ("_id", 1)],
    "-created_at": [("created_at", -1), ("_id", -1)],
}


def encode(sort: str, document: dict) -> str:
    field = SORTS[sort][0][0]
    value = document["price"]["amount"] if field == "price.amount" else document[field]
    plain = str(value.to_decimal()) if isinstance(value, Decimal128) else \
        value.isoformat() if isinstance(value, datetime) else value
    raw = json.dumps([sort, plain, str(document["_id"])], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(token: str, sort: str) -> tuple[object, ObjectId]:
    """The (sort value, id) a cursor names; ValueError when it is not one of ours for this sort."""
    try:
        made_for, plain, object_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        value = _typed(SORTS[made_for][0][0], plain)
        object_id = ObjectId(object_id)
    except (ValueError, TypeError, KeyError, InvalidId, InvalidOperation, binascii.Error):
        raise ValueError("not a cursor this API made: pass the `next` of a page unchanged") from None
    if made_for != sort:
        raise ValueError(f"this cursor continues sort={made_for}; send that sort with it")
    return value, object_id


def _typed(field: str, plain: object) -> object:
    if field == "price.amount":
        return Decimal128(Decimal(str(plain)))
    if field == "created_at":
        return datetime.fromisoformat(str(plain))
    if not isinstance(plain, str):
        raise TypeError(plain)
    return plain


def after(sort: str, value: object, object_id: ObjectId) -> dict:
    """The filter for what follows (value, id) in this sort."""
    (field, direction), (_, id_direction) = SORTS[sort]
    beyond, id_beyond = ("$gt" if direction == 1 else "$lt"), ("$gt" if id_direction == 1 else "$lt")
    return {"$or": [{field: {beyond: value}}, {field: value, "_id": {id_beyond: object_id}}]}
