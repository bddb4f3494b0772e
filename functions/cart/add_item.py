"""POST /cart/{user_id}/items — add a product (quantities add up, at most 100 per line, 50 lines, within stock).

With an `Idempotency-Key`, the add is applied once per key: a retry of one applied before (its answer lost) answers
the cart as it is now, marked `Idempotent-Replayed: true`; the key with another product or quantity is 422.
"""

import functions_framework.aio

from functions.cart import service, store
from functions.cart.models import AddItem
from shared import catalog_client, ids
from shared.auth import require_owner
from shared.http import REPLAYED, endpoint, json_response, parse_body


@functions_framework.aio.http
@endpoint("cart-add-item")
async def add_item(request, user_id):
    await require_owner(request.headers, ids.user_id(user_id), "cart")
    key = ids.idempotency_key(request.headers, required=False)
    item = await parse_body(AddItem, request)
    cart, replayed = await service.add_item(user_id, item.product_sku, item.quantity, carts=store,
                                            lookup=catalog_client.lookup, idempotency_key=key)
    return json_response(cart, headers=REPLAYED if replayed else None)
