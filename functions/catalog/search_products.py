"""GET /search?q= — relevance-ordered search over name, brand, tags and descriptions (name matches first).

Bounded for anonymous callers: at least 2 characters, at most SEARCH_CANDIDATES matches ranked, and a server-side
time limit (SEARCH_MAX_TIME_MS) past which the answer is 503 `search-timeout` (see store.search for its cost).
"""

import functions_framework.aio

from functions.catalog import product_cache, store
from functions.catalog.models import SearchQuery
from shared.auth import optional_user
from shared.http import endpoint, parse_query
from shared.http_cache import body_etag, cache_headers, conditional_json


@functions_framework.aio.http
@endpoint("catalog-search-products")
async def search_products(request):
    user = await optional_user(request.headers)
    query = parse_query(SearchQuery, request)
    body = (await store.search(query, include_inactive=bool(user and user.is_admin))).model_dump_json().encode()
    headers = cache_headers(body_etag(body), max_age=product_cache.ttl(), private=user is not None)
    return conditional_json(request.headers.get("if-none-match"), body, headers)
