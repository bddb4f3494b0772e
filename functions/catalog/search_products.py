"""GET /search?q= — relevance-ordered search over name, brand, tags and descriptions (name matches first).

Bounded for anonymous callers: at least 2 characters, at most SEARCH_CANDIDATES matches ranked, and a server-side
time limit (SEARCH_MAX_TIME_MS) past which the answer is 503 `search-timeout` (see store.search for its cost).
An answer is kept in this instance's memory for up to PRODUCT_CACHE_TTL_SECONDS, like a listing's page.
"""

import functions_framework.aio

from functions.catalog import product_cache, store
from functions.catalog.models import SearchQuery
from shared.auth import optional_user
from shared.http import endpoint, parse_query
from shared.http_cache import cache_headers, conditional_json


@functions_framework.aio.http
@endpoint("catalog-search-products")
async def search_products(request):
    user = await optional_user(request.headers)
    query = parse_query(SearchQuery, request)
    page, cached = await store.searched(query, include_inactive=bool(user and user.is_admin))
    headers = cache_headers(page.etag, max_age=product_cache.ttl(), private=user is not None,
                            age=page.age() if cached else None)
    return conditional_json(request.headers.get("if-none-match"), page.body, headers)
