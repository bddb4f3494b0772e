"""GET /products — filter, sort and page the catalog. No token needed; admins also see inactive products.

Pages by `offset` or, as cheaply on the last page as on the first, by `after=<next of the previous page>`.
A page carries a strong ETag of its content (304 on `If-None-Match`), is answered from this instance's memory
for up to PRODUCT_CACHE_TTL_SECONDS after it was read (see product_cache) and may be kept by an edge as long
again (see shared.http_cache).
"""

import functions_framework.aio

from functions.catalog import product_cache, store
from functions.catalog.models import ProductQuery
from shared.auth import optional_user
from shared.http import endpoint, parse_query
from shared.http_cache import cache_headers, conditional_json


@functions_framework.aio.http
@endpoint("catalog-list-products")
async def list_products(request):
    user = await optional_user(request.headers)
    query = parse_query(ProductQuery, request)
    page, cached = await store.listing(query, include_inactive=bool(user and user.is_admin))
    headers = cache_headers(page.etag, max_age=product_cache.ttl(), private=user is not None,
                            age=page.age() if cached else None)
    return conditional_json(request.headers.get("if-none-match"), page.body, headers)
