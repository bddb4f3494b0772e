"""DELETE /cart/{user_id}/items/{sku} — remove a line (404 when absent) and answer the cart."""

import functions_framework.aio

from functions.cart import service, store
from shared import catalog_client, ids
from shared.auth import require_owner
from shared.http import endpoint, json_response


@functions_framework.aio.http
@endpoint("cart-remove-item")
async def remove_item(request, user_id, sku):
    await require_owner(request.headers, ids.user_id(user_id), "cart")
    cart = await service.remove_item(user_id, ids.cart_line_sku(sku), carts=store, lookup=catalog_client.lookup)
    return json_response(cart)
