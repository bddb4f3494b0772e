"""What the catalog's internal endpoints accept and answer: the contract the cart and orders functions rely on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from shared.model import Model
from shared.money import Money

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN),
                Field(description="Stock keeping unit: letters, digits, '.', '_' or '-', at most 64 characters")]
MAX_LOOKUP = 100


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

    reservation_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]
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
