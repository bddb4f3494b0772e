"""PATCH /products/{product_id} (admin) — change only the fields sent, each validated as on create.

Stock moves by `stock_adjustment` (atomic, never below zero: 409), or is set by `stock_quantity` only with
`If-Match: "v<version>"` naming the current ETag (428 without it, 412 when stale), so it never overwrites a
concurrent reservation. `If-Match` on other changes is honoured too. The response carries the new `ETag`.
With an `Idempotency-Key`, a retry of an applied change (its answer lost) is not applied again: it answers the
product as it is now, marked `Idempotent-Replayed: true`.
"""

import functions_framework.aio

from functions.catalog import store
from functions.catalog.models import ProductUpdate, change_fingerprint, etag, if_match_versions
from shared.auth import require_admin
from shared.errors import PreconditionRequired
from shared.http import REPLAYED, endpoint, json_response, parse_body
from shared.ids import idempotency_key, senders_key


@functions_framework.aio.http
@endpoint("catalog-update-product")
async def update_product(request, product_id):
    admin = await require_admin(request.headers)
    key = idempotency_key(request.headers, required=False)
    changes = await parse_body(ProductUpdate, request)
    if_match = request.headers.get("if-match")
    versions = if_match_versions(if_match)
    if changes.stock_quantity is not None and versions is None:
        raise PreconditionRequired("Setting stock_quantity needs If-Match with the product's current ETag (from "
                                   "GET /products/{id}); or send stock_adjustment to add or remove stock")
    # The second spelling is how keys were recorded before senders_key: a retry across that deploy still replays.
    keyed = None if key is None else \
        ((senders_key(admin.id, key), f"{admin.id} {key}"), change_fingerprint(changes, if_match))
    product, replayed = await store.update(product_id, changes, versions=versions, keyed=keyed)
    headers = {"ETag": etag(product.version)} | (REPLAYED if replayed else {})
    return json_response(product.public(), headers=headers)
