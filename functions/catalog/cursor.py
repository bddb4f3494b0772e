"""Keyset paging for GET /products: `next` names the last product of a page by its sort value and id, and
`after=<next>` asks for what follows it, so a page costs the same however deep it is (no skipped documents).

A cursor is opaque to callers: base64url of `[sort, value, id]`, answered 422 when it was not made by us or was
made for another sort.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timezone
from decimal import Decimal

from bson import Decimal128, ObjectId
from bson.errors import InvalidId

from shared.money import BOUND_PATTERN

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
    except (ValueError, TypeError, KeyError, InvalidId, binascii.Error, ArithmeticError, RecursionError):
        raise ValueError("not a cursor this API made: pass the `next` of a page unchanged") from None
    if made_for != sort:
        raise ValueError(f"this cursor continues sort={made_for}; send that sort with it")
    return value, object_id


_PRICE = re.compile(BOUND_PATTERN)


def _typed(field: str, plain: object) -> object:
    """The sort value, held to what our store can hold: a crafted one must be refused here, not by the driver."""
    if not isinstance(plain, str):
        raise TypeError(plain)
    if field == "price.amount":
        if not _PRICE.fullmatch(plain):
            raise ValueError(plain)
        return Decimal128(Decimal(plain))
    if field == "created_at":
        stamp = datetime.fromisoformat(plain)
        if stamp.tzinfo is None:
            raise ValueError(plain)
        return stamp.astimezone(timezone.utc)  # OverflowError (an ArithmeticError) at the ends of the calendar
    return plain


def after(sort: str, value: object, object_id: ObjectId) -> dict:
    """The filter for what follows (value, id) in this sort."""
    (field, direction), (_, id_direction) = SORTS[sort]
    beyond, id_beyond = ("$gt" if direction == 1 else "$lt"), ("$gt" if id_direction == 1 else "$lt")
    return {"$or": [{field: {beyond: value}}, {field: value, "_id": {id_beyond: object_id}}]}
