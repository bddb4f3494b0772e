"""PATCH /products/{product_id} (admin) — change only the fields sent, each validated as on create."""

import functions_framework.aio

from functions.catalog import store
from functions.catalog.models import ProductUpdate
from shared.auth import require_admin
from shared.http import endpoint, json_response, parse_body


@functions_framework.aio.http
@endpoint("catalog-update-product")
async def update_product(request, product_id):
    require_admin(request.headers)
    changes = await parse_body(ProductUpdate, request)
    return json_response(await store.update(product_id, changes))
