"""Cart rules: what may be added, and how stored lines and catalog prices become the cart a shopper sees.

No driver here: the store and the catalog lookup are passed in.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from functions.cart.models import CartLine, CartPublic
from shared.catalog_contract import CatalogItem
from shared.errors import BadGateway, Conflict, NotFound, ServiceUnavailable, Unprocessable


def product_to_add(sku: str, catalog: dict[str, CatalogItem]) -> CatalogItem:
    """The catalog product behind `sku`, refused when it does not exist or is not for sale."""
    product = catalog.get(sku)
    if product is None:
        raise NotFound(f"No product with sku '{sku}'")
    if not product.is_active:
        raise Unprocessable(f"The product '{sku}' is not for sale", errors=[{
            "field": "body.product_sku", "message": "product is inactive", "type": "product_inactive"}])
    return product


def view(user_id: str, lines: dict[str, int], catalog: dict[str, CatalogItem] | None,
         updated_at: datetime | None) -> CartPublic:
    """The cart as shown: catalog names and prices at read time; unavailable lines excluded from the total.

    `catalog` is None when the catalog could not be asked: the lines are then shown as stored, unpriced.
    """
    items = [_line(sku, quantity, catalog) for sku, quantity in sorted(lines.items())]
    priced = catalog is not None
    counted = [item for item in items if item.available]
    currencies = {item.currency for item in counted}
    mixed = len(currencies) > 1
    total = sum((item.item_total_price for item in counted), Decimal("0")) if priced and not mixed else None
    return CartPublic(
        user_id=user_id,
        items=items,
        total_items=sum(item.quantity for item in items),
        total_price=total,
        currency=next(iter(currencies)) if len(currencies) == 1 else None,
        mixed_currencies=mixed,
        priced=priced,
        updated_at=updated_at,
    )


def _line(sku: str, quantity: int, catalog: dict[str, CatalogItem] | None) -> CartLine:
    product = catalog.get(sku) if catalog is not None else None
    if product is None or not product.is_active:
        return CartLine(product_sku=sku, quantity=quantity, name=product.name if product else None,
                        price_per_item=None, item_total_price=None, currency=None,
                        available=None if catalog is None else False)
    return CartLine(product_sku=sku, quantity=quantity, name=product.name, price_per_item=product.price.amount,
                    item_total_price=product.price.amount * quantity, currency=product.price.currency,
                    available=True)


async def add_item(user_id: str, sku: str, quantity: int, *, carts, lookup,
                   idempotency_key: str | None = None) -> tuple[CartPublic, bool]:
    """Add `quantity` of `sku` (quantities add up); one catalog call prices the whole resulting cart. With a key,
    once per key: a repeat of an applied add answers the cart as it is, and True (replayed)."""
    catalog = await lookup(await carts.skus(user_id) | {sku})
    try:
        product = product_to_add(sku, catalog)
    except (NotFound, Unprocessable):
        # The product is gone or off sale since this keyed add was applied: its retry is still answered as applied.
        replayed = idempotency_key and await carts.replayed_add(user_id, idempotency_key, sku, quantity)
        if not replayed:
            raise
        return await show(user_id, replayed, lookup=lookup), True
    stored = await carts.add(user_id, sku, quantity, stock=product.stock_quantity, idempotency_key=idempotency_key)
    return await _priced(user_id, stored, catalog, lookup), stored.replayed


async def set_quantity(user_id: str, sku: str, quantity: int, *, carts, lookup) -> CartPublic:
    present = await carts.skus(user_id)
    if sku not in present:
        raise NotFound(f"The cart has no line for '{sku}'")
    catalog = await lookup(present)
    product = catalog.get(sku)
    if product is None or not product.is_active:
        raise Conflict(f"The product '{sku}' is no longer for sale: remove the line instead")
    stored = await carts.set_quantity(user_id, sku, quantity, stock=product.stock_quantity)
    return await _priced(user_id, stored, catalog, lookup)


async def remove_item(user_id: str, sku: str, *, carts, lookup) -> CartPublic:
    return await show(user_id, await carts.remove(user_id, sku), lookup=lookup)


def unpriced(user_id: str, stored) -> CartPublic:
    """The stored cart without asking the catalog: names and prices null, `priced: false`."""
    return view(user_id, stored.lines, None, stored.updated_at)


async def show(user_id: str, stored, *, lookup) -> CartPublic:
    """The stored cart priced by the catalog; when the catalog is unavailable, unpriced rather than failing."""
    if not stored.lines:
        return view(user_id, {}, {}, stored.updated_at)
    try:
        catalog = await lookup(stored.lines.keys())
    except (ServiceUnavailable, BadGateway):
        catalog = None
    return view(user_id, stored.lines, catalog, stored.updated_at)


async def _priced(user_id: str, stored, catalog: dict[str, CatalogItem], lookup) -> CartPublic:
    unseen = stored.lines.keys() - catalog.keys()  # lines another request added meanwhile
    if unseen:
        catalog = catalog | await lookup(unseen)
    return view(user_id, stored.lines, catalog, stored.updated_at)
