"""What the catalog's internal endpoints accept and answer: the contract the cart and orders functions rely on."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.money import Money

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN),
                Field(description="Stock keeping unit: letters, digits, '.', '_' or '-', at most 64 characters")]
MAX_LOOKUP = 100


class CatalogItem(BaseModel):
    sku: str
    id: str
    name: str
    price: Money
    stock_quantity: int
    is_active: bool


class LookupResult(BaseModel):
    items: list[CatalogItem]


class StockLine(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sku: Sku
    quantity: Annotated[int, Field(ge=1, le=1000)]
