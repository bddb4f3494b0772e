"""POST /cart/{user_id}/items — add a product (quantities add up, at most 100 per line, 50 lines, within stock)."""

import functions_framework.aio

from functions.cart import service, store
from functions.cart.models import AddItem
from shared import catalog_client, ids
from shared.auth import require_owner
from shared.http import endpoint, json_response, parse_body


@functions_framework.aio.http
@endpoint("cart-add-item")
async def add_item(request, user_id):
    await require_owner(request.headers, ids.user_id(user_id), "cart")
    item = await parse_body(AddItem, request)
    cart = await service.add_item(user_id, item.product_sku, item.quantity, carts=store, lookup=catalog_client.lookup)
    return json_response(cart)
