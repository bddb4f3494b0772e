"""POST /products (admin) — create a product (version 1: `ETag: "v1"`); a duplicate SKU is 409."""

import functions_framework.aio

from functions.catalog import store
from functions.catalog.models import ProductCreate, etag
from shared.auth import require_admin
from shared.http import endpoint, json_response, parse_body


@functions_framework.aio.http
@endpoint("catalog-create-product")
async def create_product(request):
    await require_admin(request.headers)
    product = await store.insert(await parse_body(ProductCreate, request))
    public = product.public()
    return json_response(public, 201, headers={"Location": f"/products/{public.id}", "ETag": etag(product.version)})
