"""POST /orders — place an order (from `items` or the cart); `Idempotency-Key` makes retries safe."""

import functions_framework.aio

from functions.orders import service
from functions.orders.adapters import real_ports
from functions.orders.fingerprint import keyed_fingerprint
from functions.orders.models import CreateOrder
from shared.auth import require_user
from shared.errors import Conflict, Forbidden
from shared.http import endpoint, json_response, parse_body
from shared.ids import idempotency_key


@functions_framework.aio.http
@endpoint("orders-create-order")
async def create_order(request):
    user = await require_user(request.headers)
    key = idempotency_key(request.headers, required=True)
    order = await parse_body(CreateOrder, request)
    if order.user_id != user.id:  # nothing is looked up for another user, so a 403 reveals nothing
        raise Forbidden("You may only order for yourself")
    outcome = await service.place_order(order, key, keyed_fingerprint(order), request.headers["authorization"],
                                        real_ports())
    if isinstance(outcome, service.InProgress):
        raise Conflict("A request with this Idempotency-Key is still being processed; retry it",
                       headers={"Retry-After": str(round(outcome.retry_after))})
    if isinstance(outcome, service.Refused):
        raise outcome.problem
    return json_response(outcome.order, 201, headers={"Location": f"/orders/details/{outcome.order['id']}"})
