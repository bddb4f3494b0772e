"""Stock reservations: conditional decrements that can never drive stock below zero, all lines or none.

Each reservation is a document keyed by the caller's id (the order id), which makes reserving and releasing
idempotent: a retried release never adds stock twice.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from functions.catalog.store import products, stored_price
from shared.catalog_contract import Reservation, ReservationRequest, ReservedLine
from shared.errors import Conflict, NotFound, Unprocessable
from shared.mongo import collection


class OutOfStock(Conflict):
    slug, title = "out-of-stock", "Out of Stock"


def _reservations():
    return collection("stock_reservations")


async def reserve(request: ReservationRequest) -> tuple[Reservation, bool]:
    """The reservation, and whether it was made now (False: the same id was reserved before)."""
    wanted = [{"sku": line.sku, "quantity": line.quantity} for line in request.lines]
    try:
        await _reservations().insert_one({"_id": request.reservation_id, "lines": wanted, "state": "reserving",
                                          "created_at": datetime.now(timezone.utc)})
    except DuplicateKeyError:
        return await _existing(request.reservation_id, wanted), False
    collection = await products()
    taken: list[ReservedLine] = []
    for line in sorted(request.lines, key=lambda line: line.sku):  # one order of locking for every caller
        product = await collection.find_one_and_update(
            {"sku": line.sku, "is_active": True, "stock_quantity": {"$gte": line.quantity}},
            {"$inc": {"stock_quantity": -line.quantity}},
            projection={"name": 1, "price": 1}, return_document=ReturnDocument.AFTER)
        if product is None:
            await _undo(taken)
            await _reservations().delete_one({"_id": request.reservation_id})
            raise await _refusal(line.sku)
        taken.append(ReservedLine(sku=line.sku, quantity=line.quantity, name=product["name"],
                                  price=stored_price(product["price"])))
    await _reservations().update_one({"_id": request.reservation_id},
                                     {"$set": {"state": "reserved", "lines": [t.model_dump(mode="json") for t in taken]}})
    return Reservation(reservation_id=request.reservation_id, state="reserved", lines=taken), True


async def release(reservation_id: str) -> Reservation:
    """Give the reserved stock back, once: releasing again answers the released reservation unchanged."""
    document = await _reservations().find_one_and_update(
        {"_id": reservation_id, "state": "reserved"},
        {"$set": {"state": "released", "released_at": datetime.now(timezone.utc)}})
    if document is None:
        existing = await _reservations().find_one({"_id": reservation_id})
        if existing is None:
            raise NotFound(f"No reservation '{reservation_id}'")
        if existing["state"] != "released":
            raise Conflict(f"The reservation '{reservation_id}' is still being made")
        return _as_reservation(existing)
    await _undo([ReservedLine.model_validate(line, strict=False) for line in document["lines"]])
    return _as_reservation(document | {"state": "released"})


async def _existing(reservation_id: str, wanted: list[dict]) -> Reservation:
    existing = await _reservations().find_one({"_id": reservation_id})
    if existing is None or existing["state"] == "reserving":
        raise Conflict(f"The reservation '{reservation_id}' is being made by another request")
    if [{"sku": line["sku"], "quantity": line["quantity"]} for line in existing["lines"]] != \
            sorted(wanted, key=lambda line: line["sku"]):
        raise Conflict(f"The reservation id '{reservation_id}' was used for other lines")
    return _as_reservation(existing)


def _as_reservation(document: dict) -> Reservation:
    return Reservation(reservation_id=document["_id"], state=document["state"],
                       lines=[ReservedLine.model_validate(line, strict=False) for line in document["lines"]])


async def _undo(taken: list[ReservedLine]) -> None:
    collection = await products()
    for line in taken:
        await collection.update_one({"sku": line.sku}, {"$inc": {"stock_quantity": line.quantity}})


async def _refusal(sku: str) -> Exception:
    product = await (await products()).find_one({"sku": sku}, {"is_active": 1, "stock_quantity": 1})
    if product is None:
        return NotFound(f"No product with sku '{sku}'",
                        errors=[{"field": "lines", "type": "unknown_sku", "message": sku}])
    if not product["is_active"]:
        return Unprocessable(f"The product '{sku}' is not for sale",
                             errors=[{"field": "lines", "type": "product_inactive", "message": sku}])
    return OutOfStock(f"Not enough stock of '{sku}' ({product['stock_quantity']} left)",
                      errors=[{"field": "lines", "type": "out_of_stock", "message": sku}])
