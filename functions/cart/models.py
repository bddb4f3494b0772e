"""Cart request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.catalog_contract import Sku
from shared.money import Currency, DecimalString

MAX_QUANTITY_PER_LINE = 100
MAX_LINES = 50

Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY_PER_LINE)]


class AddItem(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    product_sku: Sku
    quantity: Quantity = 1


class SetQuantity(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    quantity: Quantity


class CartLine(BaseModel):
    product_sku: str
    quantity: int
    name: str | None
    price_per_item: DecimalString | None
    item_total_price: DecimalString | None
    currency: Currency | None
    available: bool | None = Field(description="false when the product vanished or went inactive; "
                                               "null when the catalog could not be asked")


class CartPublic(BaseModel):
    user_id: str
    items: list[CartLine]
    total_items: int
    total_price: DecimalString | None = Field(description="null when the lines mix currencies or are not priced")
    currency: Currency | None
    mixed_currencies: bool = False
    priced: bool = Field(description="false when the catalog was unavailable: lines are shown as stored, unpriced")
    updated_at: datetime | None
