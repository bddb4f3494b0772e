"""The catalog as the cart and orders functions see it: batch lookups over HTTP."""

from __future__ import annotations

from urllib.parse import quote

from shared import peers
from shared.errors import ServiceUnavailable
from shared.catalog_contract import (
    MAX_LOOKUP,
    CatalogItem,
    is_stock_refusal,
    LookupResult,
    Reservation,
    ReservationRequest,
    StockLine,
)


async def lookup(skus: list[str] | set[str]) -> dict[str, CatalogItem]:
    """The catalog's products for these SKUs, active or not; absent SKUs are missing from the result."""
    wanted = sorted(set(skus))
    found: dict[str, CatalogItem] = {}
    for start in range(0, len(wanted), MAX_LOOKUP):
        chunk = wanted[start:start + MAX_LOOKUP]
        # The query string built here: httpx merging `params` into the URL cost ~30 µs a call.
        response = await peers.call("catalog-lookup-products", "GET",
                                    "/internal/products/lookup?skus=" + quote(",".join(chunk), safe=","))
        found.update((item.sku, item) for item in peers.parsed(LookupResult, response, "catalog-lookup-products").items)
    return found


async def reserve(reservation_id: str, lines: list[tuple[str, int]]) -> Reservation:
    """Take stock for all lines or none. The catalog's refusals of the stock asked for (unknown, inactive, out of
    stock, released: 404/409/422) pass through as PeerRefused; any other 4xx is the catalog failing, 503."""
    body = ReservationRequest(reservation_id=reservation_id,
                              lines=[StockLine(sku=sku, quantity=quantity) for sku, quantity in lines])
    try:
        response = await peers.call("catalog-reserve-stock", "POST", "/internal/stock/reservations",
                                    json=body.model_dump(mode="json"), expected=(200, 201))
    except peers.PeerRefused as refusal:
        if is_stock_refusal(refusal):
            raise
        raise ServiceUnavailable(f"The catalog could not take the reservation ({refusal.status}: {refusal.detail})") \
            from None
    return peers.parsed(Reservation, response, "catalog-reserve-stock")


async def confirm(reservation_id: str) -> Reservation:
    """Keep the reserved stock for good; a 409 `reservation-released` passes through as PeerRefused."""
    response = await peers.call("catalog-confirm-stock", "POST", f"/internal/stock/reservations/{reservation_id}/confirm")
    return peers.parsed(Reservation, response, "catalog-confirm-stock")
