"""Stock reservations that survive a crash at any line: every product's hold is idempotent on its own.

A reservation is a document keyed by the caller's id (the order id) that moves
    reserving ──all lines held──▶ reserved ──confirm──▶ confirmed   (the stock is sold)
        └──refused / released / expired──▶ releasing ──▶ released   (the stock is back)
and each product lists the ids of the reservations holding stock in it (`holds`), with the token of the reserve
call that took each hold (`hold_tokens.<id>`, a new one per call):
- hold:    `$inc -q` + `$push id`  only where `holds ≠ id`  (a retried hold takes nothing twice);
- release: `$inc +q` + `$pull id`  only where `holds = id`  (a retried release gives nothing twice);
- confirm: `$pull id` (and its token) with no `$inc`, only where the token is the one the reservation recorded for
  that line (the stock stays sold; the product's list stays short). A hold of the id with another token is one a
  reserve call that outlived its caller took after the confirmation dropped the recorded one: it is given back,
  not sold (by the confirmation that finds it, else by the sweep).
So a reservation left half-made or half-released by a dead instance is completed or undone exactly, by the next
call with its id or by the sweep (`sweep`), which also releases reservations nobody confirmed before they expire.
Releasing an id never seen leaves a `released` tombstone, so a reserve call that arrives late takes nothing.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

from prometheus_client import Counter
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from functions.catalog.store import SCHEMA_VERSION, products, stored_price
from shared.catalog_contract import (
    OUT_OF_STOCK,
    PRODUCT_INACTIVE,
    RESERVATION_RELEASED,
    UNKNOWN_SKU,
    Reservation,
    ReservationRequest,
    ReservedLine,
)
from shared.errors import Conflict, NotFound, Problem, RecordedProblem, Unprocessable
from shared.faults import fault_point
from shared.logs import logger
from shared.mongo import collection, require_mongo
from shared.settings import StockSettings, settings

_log = logger("catalog.stock")
# What the sweep and confirmations had to set right: each is the trace of a request that timed out or an instance
# that died (a reserve call outliving its caller, a confirmation or release stopped half-way).
RESERVATIONS_EXPIRED = Counter(
    "shop_stock_reservations_expired",
    "Reservations the sweep released: nobody confirmed them in time, or a release stopped half-way")
HOLDS_SETTLED = Counter(
    "shop_stock_holds_settled",
    "Product holds settled after their reservation was released or sold, by who found them", ["by"])


class OutOfStock(Conflict):
    slug, title = "out-of-stock", "Out of Stock"


class ReservationReleased(Conflict):
    """The reservation was given back (expired, released, or never made): its stock is not held any more."""

    slug, title = RESERVATION_RELEASED, "Reservation Released"


async def _reservations():
    await require_mongo("catalog", SCHEMA_VERSION)
    return collection("stock_reservations")


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def reserve(request: ReservationRequest) -> tuple[Reservation, bool]:
    """Hold stock for all lines or none; the reservation and whether this call made it (False: made before)."""
    wanted = sorted(({"sku": line.sku, "quantity": line.quantity} for line in request.lines),
                    key=lambda line: line["sku"])  # one order of holding for every caller
    reservations = await _reservations()
    ttl = timedelta(seconds=settings(StockSettings).reservation_ttl_seconds)
    try:
        await reservations.insert_one({"_id": request.reservation_id, "lines": wanted, "state": "reserving",
                                       "created_at": _now(), "expires_at": _now() + ttl})
        created = True
    except DuplicateKeyError:
        existing = await reservations.find_one({"_id": request.reservation_id})
        if [{"sku": line["sku"], "quantity": line["quantity"]} for line in existing["lines"]] != wanted \
                and existing["state"] != "released":
            raise Conflict(f"The reservation id '{request.reservation_id}' was used for other lines")
        if existing["state"] in ("released", "releasing"):
            raise _refusal_of(existing)
        if existing["state"] != "reserving":
            return _answer(existing), False
        if existing["expires_at"] < _now():  # too late to complete it: give back what it holds
            await release(request.reservation_id)
            raise _refusal_of(existing)
        created = False  # a reservation a dead instance left half-made: complete it
    return await _hold_all(request.reservation_id, wanted), created


def _token_field(reservation_id: str) -> str:
    return f"hold_tokens.{reservation_id}"  # ids are letters, digits and '-' (shared.ids.RESERVATION_ID_PATTERN)


async def _hold_all(reservation_id: str, wanted: list[dict]) -> Reservation:
    collection_ = await products()
    token, token_field = uuid.uuid4().hex, _token_field(reservation_id)
    shown = {"name": 1, "price": 1, token_field: 1}
    held: list[dict] = []
    for line in wanted:
        product = await collection_.find_one_and_update(
            {"sku": line["sku"], "is_active": True, "stock_quantity": {"$gte": line["quantity"]},
             "holds": {"$ne": reservation_id}},
            {"$inc": {"stock_quantity": -line["quantity"], "version": 1}, "$push": {"holds": reservation_id},
             "$set": {token_field: token}},
            projection=shown, return_document=ReturnDocument.AFTER)
        if product is None:  # held already by an earlier attempt with this id, or refused
            product = await collection_.find_one({"sku": line["sku"], "holds": reservation_id}, shown)
        if product is None:
            refusal = await _refusal(line["sku"])
            await _give_back(reservation_id, {"state": "reserving"}, refusal)
            raise refusal
        reserved = ReservedLine(sku=line["sku"], quantity=line["quantity"], name=product["name"],
                                price=stored_price(product["price"]))
        # The hold this line is made of (None: taken before holds had tokens); its confirmation sells only it.
        held.append(reserved.model_dump(mode="json") | {"token": product.get("hold_tokens", {}).get(reservation_id)})
        await fault_point("catalog.reserve.between-lines")
    done = await (await _reservations()).find_one_and_update(
        {"_id": reservation_id, "state": "reserving"}, {"$set": {"state": "reserved", "lines": held}},
        return_document=ReturnDocument.AFTER)
    if done is None:  # released while this call was holding (it expired, or the order was given up): undo ours
        current = await (await _reservations()).find_one({"_id": reservation_id})
        if current["state"] == "reserved" or (current["state"] == "confirmed" and not current.get("settled")):
            # Another call with the same id finished it. A hold this call took after the confirmation's pull stays
            # for the sweep, which gives back any hold of a settled reservation (or the settle still running does).
            return _answer(current)
        # Released, or confirmed with its holds already settled: any hold of this id now is one this call took
        # too late (after the release, or after the confirmation's $pull). Give it back.
        await _unhold(reservation_id, current["lines"])
        raise ReservationReleased(f"The reservation '{reservation_id}' was released while it was being made")
    await fault_point("catalog.reserve.after-commit")
    return _answer(done)


async def release(reservation_id: str) -> Reservation:
    """Give the held stock back, once; a released reservation answers unchanged, an unknown id leaves a tombstone."""
    reservations = await _reservations()
    document = await reservations.find_one_and_update(
        {"_id": reservation_id, "state": {"$in": ["reserving", "reserved", "releasing"]}},
        {"$set": {"state": "releasing"}}, return_document=ReturnDocument.AFTER)
    if document is not None:
        return await _finish_release(document)
    existing = await reservations.find_one({"_id": reservation_id})
    if existing is None:
        try:  # nothing was held; make sure a reserve call still on its way holds nothing either
            await reservations.insert_one({"_id": reservation_id, "lines": [], "state": "released",
                                           "created_at": _now(), "released_at": _now()})
        except DuplicateKeyError:
            return await release(reservation_id)  # that reserve call just arrived: release what it holds
        return Reservation(reservation_id=reservation_id, state="released", lines=[])
    if existing["state"] == "confirmed":
        raise Conflict(f"The reservation '{reservation_id}' is confirmed for a paid order; it cannot be released")
    return _answer(existing)


async def confirm(reservation_id: str) -> Reservation:
    """Keep the held stock for good (the order is paid); idempotent. A released reservation cannot be confirmed."""
    reservations = await _reservations()
    document = await reservations.find_one_and_update(
        {"_id": reservation_id, "state": {"$in": ["reserved", "confirmed"]}},
        {"$set": {"state": "confirmed", "confirmed_at": _now()}}, return_document=ReturnDocument.AFTER)
    if document is None:
        existing = await reservations.find_one({"_id": reservation_id})
        if existing is None:
            raise NotFound(f"No reservation '{reservation_id}'")
        if existing["state"] == "reserving":
            raise Conflict(f"The reservation '{reservation_id}' is still being made; reserve it again first")
        raise ReservationReleased(f"The reservation '{reservation_id}' was released; its stock is not held any more")
    if not document.get("settled"):
        await fault_point("catalog.confirm.before-pull")
        _, given_back = await _settle_confirmed(document)
        if given_back:
            HOLDS_SETTLED.labels("confirmation").inc(given_back)
    return _answer(document)


async def _settle_confirmed(document: dict) -> tuple[int, int]:
    """The held stock is sold: drop the holds the reservation recorded; when some were gone already (an earlier
    settle died mid-way), give back any other hold of its id (a late reserve call took it after they were dropped);
    then mark the reservation settled — from then on a hold of its id can only be a late one, and the sweep gives
    it back. How many holds this dropped, and how many it gave back."""
    reservation_id, token_field = document["_id"], _token_field(document["_id"])
    collection_ = await products()
    # A line written before tokens (no `token` key) sells whatever hold of the id its product has, as it did then;
    # a token of None, a hold taken before tokens (a missing field), and only that.
    recorded = [{"sku": line["sku"], token_field: line["token"]} if "token" in line else {"sku": line["sku"]}
                for line in document["lines"]]
    pulled = (await collection_.update_many({"$or": recorded, "holds": reservation_id},
                                            {"$pull": {"holds": reservation_id}, "$unset": {token_field: ""}})
              ).matched_count if recorded else 0
    await fault_point("catalog.confirm.after-pull")
    # Every line's recorded hold was still there until just now: a late hold can only come after this pull, and
    # the sweep gives it back. Otherwise (an earlier attempt pulled some and died) look for late holds now.
    given_back = 0
    if pulled < len(recorded):
        late = {product["sku"] async for product in collection_.find(
            {"sku": {"$in": [line["sku"] for line in document["lines"]]}, "holds": reservation_id}, {"sku": 1})}
        if late:
            given_back = await _unhold(reservation_id, [line for line in document["lines"] if line["sku"] in late])
    await (await _reservations()).update_one({"_id": reservation_id}, {"$set": {"settled": True}})
    return pulled, given_back


# Products whose `holds` lists at least one reservation id (ids are strings; an empty list matches nothing):
# a range on the `holds` index, so the sweep reads only products holding stock.
HELD = {"holds": {"$gte": ""}}
SWEEP_SECONDS = 20  # a tick's time (the Service's timeout is 30 s); the next tick goes on from where it stopped
# Where the last tick out of time stopped, kept in the store: each tick may be a new instance (scale to zero).
_SWEEP_PLACE = {"_id": "held-products"}


async def _held_pages(limit: int, deadline: float):
    """Every product holding stock, `limit` at a time in id order: a tick reads them all (while a few hundred
    products hold live reservations, the one with a stale hold after them is reached too), or as many as its
    time allows, and the next tick, in this instance or another, goes on after the last one read."""
    places = collection("reservation_sweep")
    place = await places.find_one(_SWEEP_PLACE)
    after = place.get("after") if place else None
    while True:
        query = HELD if after is None else {**HELD, "_id": {"$gt": after}}
        page = await (await products()).find(query, {"holds": 1}).sort("_id", 1).limit(limit).to_list()
        if page:
            yield page
        if len(page) < limit:
            if place and place.get("after") is not None:
                await places.update_one(_SWEEP_PLACE, {"$set": {"after": None}}, upsert=True)  # from the start next
            return
        after = page[-1]["_id"]
        if time.monotonic() > deadline:
            await places.update_one(_SWEEP_PLACE, {"$set": {"after": after}}, upsert=True)
            return


async def _settle_stale_holds(reservations, held: list[dict]) -> int:
    """Give back (or, for a confirmed reservation, drop) the holds of reservations no longer held; how many."""
    holding = list({reservation_id for product in held for reservation_id in product["holds"]})
    settled = 0
    async for document in reservations.find({"_id": {"$in": holding}, "state": {"$in": ["released", "confirmed"]}}):
        if document["state"] == "confirmed" and not document.get("settled"):
            settled += sum(await _settle_confirmed(document))  # its confirmation stopped before dropping the holds
        else:
            settled += await _unhold(document["_id"], document["lines"])
    return settled


async def sweep(limit: int = 500) -> dict[str, int]:
    """Release expired or half-released reservations, and settle any hold whose reservation is no longer held."""
    deadline = time.monotonic() + SWEEP_SECONDS
    reservations = await _reservations()
    stale = reservations.find({"$or": [{"state": {"$in": ["reserving", "reserved"]}, "expires_at": {"$lt": _now()}},
                                       {"state": "releasing"}]}, {"_id": 1}).limit(limit)
    expired = [document["_id"] async for document in stale]
    await fault_point("catalog.sweep.before-release")
    released = 0
    for reservation_id in expired:
        try:
            await release(reservation_id)
            released += 1
        except Conflict:  # confirmed for a paid order since it was read: kept, and the tick goes on
            continue
    settled = 0
    async for held in _held_pages(limit, deadline):
        settled += await _settle_stale_holds(reservations, held)
    if released or settled:
        _log.info("reservations swept", extra={"released": released, "holds_settled": settled})
        RESERVATIONS_EXPIRED.inc(released)
        HOLDS_SETTLED.labels("sweep").inc(settled)
    return {"released": released, "holds_settled": settled}


async def _finish_release(document: dict) -> Reservation:
    await _unhold(document["_id"], document["lines"])
    await fault_point("catalog.release.before-commit")
    released = await (await _reservations()).find_one_and_update(
        {"_id": document["_id"], "state": "releasing"},
        {"$set": {"state": "released", "released_at": _now()}}, return_document=ReturnDocument.AFTER)
    return _answer(released or document | {"state": "released"})


async def _give_back(reservation_id: str, condition: dict, refusal: Problem) -> None:
    """A refused reservation: give back what it holds and remember why, so a retry is answered the same."""
    document = await (await _reservations()).find_one_and_update(
        {"_id": reservation_id, **condition},
        {"$set": {"state": "releasing", "refusal": {"status": refusal.status, "body": refusal.body()}}},
        return_document=ReturnDocument.AFTER)
    if document is not None:
        await _finish_release(document)


async def _unhold(reservation_id: str, lines: list[dict]) -> int:
    """Give back each line's hold of the reservation that is still there; how many were."""
    collection_, given_back = await products(), 0
    for line in lines:
        result = await collection_.update_one(
            {"sku": line["sku"], "holds": reservation_id},
            {"$inc": {"stock_quantity": line["quantity"], "version": 1}, "$pull": {"holds": reservation_id},
             "$unset": {_token_field(reservation_id): ""}})
        given_back += result.modified_count
    return given_back


def _refusal_of(document: dict) -> Problem:
    """Why a released reservation holds nothing: the same refusal as its first call got, or its release."""
    refusal = document.get("refusal")
    if refusal is not None:
        return RecordedProblem(refusal["status"], refusal["body"])
    return ReservationReleased(f"The reservation '{document['_id']}' was released; reserve under a new id")


def _answer(document: dict) -> Reservation:
    state = "released" if document["state"] == "releasing" else document["state"]
    if state == "reserving":
        raise Conflict(f"The reservation '{document['_id']}' is being made by another request")
    lines = [line for line in document["lines"] if "name" in line]
    return Reservation(reservation_id=document["_id"], state=state,
                       lines=[ReservedLine.model_validate(line, strict=False) for line in lines])


async def _refusal(sku: str) -> Problem:
    product = await (await products()).find_one({"sku": sku}, {"is_active": 1, "stock_quantity": 1})
    if product is None:
        return NotFound(f"No product with sku '{sku}'",
                        errors=[{"field": "lines", "type": UNKNOWN_SKU, "message": sku}])
    if not product["is_active"]:
        return Unprocessable(f"The product '{sku}' is not for sale",
                             errors=[{"field": "lines", "type": PRODUCT_INACTIVE, "message": sku}])
    return OutOfStock(f"Not enough stock of '{sku}' ({product['stock_quantity']} left)",
                      errors=[{"field": "lines", "type": OUT_OF_STOCK, "message": sku}])
