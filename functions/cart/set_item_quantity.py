"""PUT /cart/{user_id}/items/{sku} — set a line's quantity; 404 when the cart has no such line."""

import functions_framework.aio

from functions.cart import service, store
from functions.cart.models import SetQuantity
from shared import catalog_client, ids
from shared.auth import require_owner
from shared.http import endpoint, json_response, parse_body


@functions_framework.aio.http
@endpoint("cart-set-item-quantity")
async def set_item_quantity(request, user_id, sku):
    await require_owner(request.headers, ids.user_id(user_id), "cart")
    sku = ids.cart_line_sku(sku)
    change = await parse_body(SetQuantity, request)
    cart = await service.set_quantity(user_id, sku, change.quantity, carts=store, lookup=catalog_client.lookup)
    return json_response(cart)
