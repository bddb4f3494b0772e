"""POST /internal/cart/{user_id}/orders/{order_id} — take an order's quantities out of the cart, once per order.

Cluster-local: the orders function calls it after an order from the cart is placed. A repeat with the same order id
changes nothing and answers `applied: false`; lines added or removed meanwhile are left as the shopper left them.
"""

import uuid

import functions_framework.aio

from functions.cart import store
from functions.cart.models import CartLines, OrderedLines
from shared import ids
from shared.errors import NotFound
from shared.http import endpoint, json_response, parse_body


@functions_framework.aio.http
@endpoint("cart-remove-ordered")
async def remove_ordered(request, user_id, order_id):
    ids.user_id(user_id)
    try:
        order = str(uuid.UUID(order_id))  # one spelling per order, so one marker
    except ValueError:
        raise NotFound(f"No order '{order_id}'") from None
    ordered = await parse_body(OrderedLines, request)
    lines = [(line.product_sku, line.quantity) for line in ordered.lines]
    remaining, applied = await store.remove_ordered(user_id, order, lines)
    return json_response(CartLines.of(user_id, remaining.lines, applied))
