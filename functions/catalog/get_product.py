"""GET /products/{product_id} — one product; unknown, malformed or (for non-admins) inactive ids are 404.

The response carries `ETag: "v<version>"`; with `If-None-Match` naming that version the answer is 304, no body.
A product is answered from this instance's memory for up to PRODUCT_CACHE_TTL_SECONDS after it was read (see
product_cache), and an edge may keep an anonymous answer as long again (see shared.http_cache).
"""

import functions_framework.aio

from functions.catalog import product_cache, store
from functions.catalog.models import etag
from shared.auth import optional_user
from shared.http import endpoint
from shared.http_cache import cache_headers, conditional_json


@functions_framework.aio.http
@endpoint("catalog-get-product")
async def get_product(request, product_id):
    user = await optional_user(request.headers)
    product, cached = await store.read(product_id, include_inactive=bool(user and user.is_admin))
    headers = cache_headers(etag(product.version), max_age=product_cache.ttl(), private=user is not None,
                            age=product.age() if cached else None)
    return conditional_json(request.headers.get("if-none-match"), product.body, headers)
