"""GET /cart/{user_id} — the cart priced from the catalog at read time; a never-used cart is empty, not 404."""

import functions_framework.aio

from functions.cart import service, store
from shared import catalog_client, ids
from shared.auth import require_owner_or_admin
from shared.http import endpoint, json_response


@functions_framework.aio.http
@endpoint("cart-get-cart")
async def get_cart(request, user_id):
    require_owner_or_admin(request.headers, ids.user_id(user_id))
    cart = await service.show(user_id, await store.get(user_id), lookup=catalog_client.lookup)
    return json_response(cart)
