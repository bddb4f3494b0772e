"""The shopper's cart as the orders functions need it, called over HTTP on the shopper's behalf."""

from __future__ import annotations

from shared import peers
from shared.logs import logger

_log = logger("orders.cart")


async def lines(user_id: str, authorization: str) -> list[tuple[str, int]]:
    response = await peers.call("cart-get-cart", "GET", f"/cart/{user_id}", headers={"Authorization": authorization})
    return [(line["product_sku"], line["quantity"]) for line in response.json()["items"]]


async def empty(user_id: str, authorization: str) -> None:
    """Best effort: an order that succeeded stays successful when its cart cannot be emptied."""
    try:
        await peers.call("cart-clear-cart", "DELETE", f"/cart/{user_id}", headers={"Authorization": authorization},
                         expected=(204,))
    except Exception as error:  # noqa: BLE001 - logged, the order stands
        _log.warning("cart not emptied after order", extra={"user_id": user_id, "error": repr(error)})
