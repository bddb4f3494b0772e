"""The catalog as the cart and orders functions see it: batch lookups over HTTP."""

from __future__ import annotations

from shared import peers
from shared.catalog_contract import MAX_LOOKUP, CatalogItem, LookupResult


async def lookup(skus: list[str] | set[str]) -> dict[str, CatalogItem]:
    """The catalog's products for these SKUs, active or not; absent SKUs are missing from the result."""
    wanted = sorted(set(skus))
    found: dict[str, CatalogItem] = {}
    for start in range(0, len(wanted), MAX_LOOKUP):
        chunk = wanted[start:start + MAX_LOOKUP]
        response = await peers.call("catalog-lookup-products", "GET", "/internal/products/lookup",
                                    params={"skus": ",".join(chunk)})
        found.update((item.sku, item) for item in LookupResult.model_validate_json(response.content).items)
    return found
