"""GET /cart/{user_id} — the cart priced from the catalog at read time; a never-used cart is empty, not 404.

`?priced=false` answers the stored lines without asking the catalog (what the orders function needs).
"""

import functions_framework.aio

from functions.cart import service, store
from functions.cart.models import CartQuery
from shared import catalog_client, ids
from shared.auth import require_owner
from shared.http import endpoint, json_response, parse_query


@functions_framework.aio.http
@endpoint("cart-get-cart")
async def get_cart(request, user_id):
    await require_owner(request.headers, ids.user_id(user_id), "cart", admin_may=True)
    query = parse_query(CartQuery, request)
    stored = await store.get(user_id)
    if not query.priced:
        return json_response(service.unpriced(user_id, stored))
    return json_response(await service.show(user_id, stored, lookup=catalog_client.lookup))
