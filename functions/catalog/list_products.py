"""GET /products — filter, sort and page the catalog. No token needed; admins also see inactive products."""

import functions_framework.aio

from functions.catalog import store
from functions.catalog.models import ProductQuery
from shared.auth import optional_user
from shared.http import endpoint, json_response, parse_query


@functions_framework.aio.http
@endpoint("catalog-list-products")
async def list_products(request):
    user = optional_user(request.headers)
    query = parse_query(ProductQuery, request)
    page = await store.find(query, include_inactive=bool(user and user.is_admin))
    return json_response(page)
