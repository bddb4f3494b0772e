"""What the catalog's internal endpoints accept and answer: the contract the cart and orders functions rely on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from shared.ids import RESERVATION_ID_PATTERN, SKU_PATTERN
from shared.model import Model
from shared.money import Money

Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN),
                Field(description="Stock keeping unit: letters, digits, '.', '_' or '-', at most 64 characters")]
MAX_LOOKUP = 100
# Why the catalog refuses a reservation (the `type` of its problem's error): the only refusals an order takes as
# final. Any other 4xx (a caller the catalog does not know yet, a route missing) says nothing about the stock.
UNKNOWN_SKU, PRODUCT_INACTIVE, OUT_OF_STOCK = "unknown_sku", "product_inactive", "out_of_stock"
RESERVATION_RELEASED = "reservation-released"  # the slug of a reservation given back meanwhile


def is_stock_refusal(problem) -> bool:
    """Whether the catalog's refusal of a reservation is about the stock asked for (final for that order)."""
    types = {error.get("type") for error in problem.errors or [] if isinstance(error, dict)}
    return problem.slug == RESERVATION_RELEASED or bool(types & {UNKNOWN_SKU, PRODUCT_INACTIVE, OUT_OF_STOCK})


class CatalogItem(Model):
    sku: str
    id: str
    name: str
    price: Money
    stock_quantity: int
    is_active: bool


class LookupResult(Model):
    items: list[CatalogItem]


class StockLine(Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    sku: Sku
    quantity: Annotated[int, Field(ge=1, le=1000)]


class ReservationRequest(Model):
    """Take stock for an order, all lines or none; the same id again answers the same reservation."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reservation_id: Annotated[str, StringConstraints(pattern=RESERVATION_ID_PATTERN)]
    lines: Annotated[list[StockLine], Field(min_length=1, max_length=MAX_LOOKUP)]

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, lines: list[StockLine]) -> list[StockLine]:
        if len({line.sku for line in lines}) != len(lines):
            raise ValueError("each sku may appear only once")
        return lines


class ReservedLine(Model):
    sku: str
    quantity: int
    name: str
    price: Money


class Reservation(Model):
    """reserving → reserved → confirmed (kept for a paid order), or → released (given back, or refused)."""

    reservation_id: str
    state: Literal["reserved", "confirmed", "released"]
    lines: list[ReservedLine]
