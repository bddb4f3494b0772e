"""GET /internal/products/lookup?skus=A,B,C — batch lookup for the cart and orders (cluster-local, no token)."""

import functions_framework.aio

from functions.catalog import store
from functions.catalog.models import LookupQuery
from shared.catalog_contract import LookupResult
from shared.http import endpoint, json_response, parse_query


@functions_framework.aio.http
@endpoint("catalog-lookup-products")
async def lookup_products(request):
    query = parse_query(LookupQuery, request)
    return json_response(LookupResult(items=await store.lookup(query.skus)))
