"""GET /search?q= — relevance-ordered search over name, brand, tags and descriptions (name matches first)."""

import functions_framework.aio

from functions.catalog import store
from functions.catalog.models import SearchQuery
from shared.auth import optional_user
from shared.http import endpoint, json_response, parse_query


@functions_framework.aio.http
@endpoint("catalog-search-products")
async def search_products(request):
    user = optional_user(request.headers)
    query = parse_query(SearchQuery, request)
    page = await store.search(query, include_inactive=bool(user and user.is_admin))
    return json_response(page)
