"""GET /products/{product_id} — one product; unknown, malformed or (for non-admins) inactive ids are 404.

The response carries `ETag: "v<version>"`; with `If-None-Match` naming that version the answer is 304, no body.
"""

import functions_framework.aio
from starlette.responses import Response

from functions.catalog import store
from functions.catalog.models import etag, none_match
from shared.auth import optional_user
from shared.http import endpoint, json_response


@functions_framework.aio.http
@endpoint("catalog-get-product")
async def get_product(request, product_id):
    user = optional_user(request.headers)
    product = await store.get(product_id, include_inactive=bool(user and user.is_admin))
    headers = {"ETag": etag(product.version)}
    if none_match(request.headers.get("if-none-match"), product.version):
        return Response(status_code=304, headers=headers)
    return json_response(product.public(), headers=headers)
