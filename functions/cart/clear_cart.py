"""DELETE /cart/{user_id} — empty the cart; 204."""

import functions_framework.aio

from functions.cart import store
from shared import ids
from shared.auth import require_owner
from shared.http import endpoint, no_content


@functions_framework.aio.http
@endpoint("cart-clear-cart")
async def clear_cart(request, user_id):
    await require_owner(request.headers, ids.user_id(user_id), "cart", admin_may=True)
    await store.clear(user_id)
    return no_content()
