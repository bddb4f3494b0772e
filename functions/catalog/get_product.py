"""GET /products/{product_id} — one product; unknown, malformed or (for non-admins) inactive ids are 404."""

import functions_framework.aio

from functions.catalog import store
from shared.auth import optional_user
from shared.http import endpoint, json_response


@functions_framework.aio.http
@endpoint("catalog-get-product")
async def get_product(request, product_id):
    user = optional_user(request.headers)
    product = await store.get(product_id, include_inactive=bool(user and user.is_admin))
    return json_response(product)
