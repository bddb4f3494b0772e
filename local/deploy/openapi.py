"""The OpenAPI 3.1 document of the public API: paths from the route table, schemas from the pydantic models.

It states every rule a function enforces on a request where OpenAPI can say it (patterns, lengths, formats, the
bounds of quantities and amounts), describes the others next to the field or operation with the 422 they answer,
and lists every response an operation can get: its function's, and the gateway's own (all problem+json).
"""

from __future__ import annotations

import ast
import copy
import importlib
import re
from pathlib import Path

from pydantic.json_schema import models_json_schema

from functions.catalog.models import PRODUCT_ID_PATTERN

from shared.ids import IDEMPOTENCY_KEY_PATTERN, SKU_PATTERN, USER_ID_PATTERN, UUID_PATTERN
from shared.routes import Route, public_routes

ROOT = Path(__file__).resolve().parents[2]
REF = "#/components/schemas/{model}"
PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details; every error of the API, the gateway's own included, is one.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri", "examples": ["https://shop.example.com/problems/not-found"]},
        "title": {"type": "string", "examples": ["Not Found"]},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "request_id": {"type": ["string", "null"], "description": "The X-Request-Id of the request"},
        "errors": {"type": "array", "description": "The fields a 4xx refused, each named", "items": {
            "type": "object", "required": ["field", "message", "type"],
            "properties": {"field": {"type": "string", "examples": ["body.price.amount"]},
                           "message": {"type": "string"}, "type": {"type": "string"}}}},
    },
    "additionalProperties": True,
}
TAGS = {"catalog": "Products: listing, search, and admin edits",
        "cart": "A shopper's cart, priced from the catalog at read time",
        "orders": "Checkout (idempotent), order history, and the admin view of the outbox",
        "notify": "Notifications and the events the broker gave up on (admin)"}
DESCRIPTION = """Every operation is served by its own Knative function (`x-function`).

- **Errors** are `application/problem+json` (RFC 9457), the gateway's own too; a field a request got wrong is
  named in `errors[].field` (`body.price.amount`, `query.limit`, `path.user_id`).
- **Auth**: `Authorization: Bearer <JWT>` (HS256; claims `sub`, `role` = `customer` | `admin`, `exp`).
- **Request ids**: `X-Request-Id` (1-128 of `A-Za-z0-9._:-`) is echoed, or one is made, on every response.
- **The gateway** answers 404 for a path no operation serves, 405 with `Allow` for a method its path does not
  accept, 413 past 1 MiB of body (functions: 64 KiB), 429 with `Retry-After` past an operation's rate limit
  (`x-rate-limit`: a token bucket per operation, shared by all callers), 503 when a function is not running and
  502 when it fails to answer.
- **Money** travels as decimal strings with two decimals: `{"amount": "19.99", "currency": "EUR"}`."""

ID_DESCRIPTION = "{what}; any other value names no {thing}: 404"
PATH_PARAMETERS = {
    "product_id": ({"type": "string", "pattern": PRODUCT_ID_PATTERN},
                   ID_DESCRIPTION.format(what="A product id, 24 hex digits", thing="product")),
    "user_id": ({"type": "string", "pattern": USER_ID_PATTERN},
                "A user id: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit; "
                "422 otherwise"),
    "sku": ({"type": "string", "pattern": SKU_PATTERN},
            "The product's SKU; a cart has no line for any other value: 404"),
    "order_id": ({"type": "string", "format": "uuid", "pattern": UUID_PATTERN},
                 ID_DESCRIPTION.format(what="An order id (UUID)", thing="order")),
    "outbox_id": ({"type": "string", "format": "uuid", "pattern": UUID_PATTERN},
                  ID_DESCRIPTION.format(what="An outbox row id (UUID)", thing="row")),
    "dead_letter_id": ({"type": "string", "format": "uuid", "pattern": UUID_PATTERN},
                       ID_DESCRIPTION.format(what="A dead letter's id (UUID)", thing="dead letter")),
}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}, "description": (
    'The ETag read before (`"v<version>"`, or `*`): the change applies only to that version, else 412. '
    "Required when the body sets `stock_quantity` (428 without it).")}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": 'ETags already held (or `*`): 304 without a body when one names the current version'}
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": True,
                   "description": "Names this checkout: a retry with the same key and body answers the same order "
                                  "(400 when missing or malformed; 422 when reused with another body)",
                   "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}}
PRODUCT_CHANGE_KEY = IDEMPOTENCY_KEY | {"required": False, "description": (
    "Names this change of this product by this admin: a retry with the same key, body and If-Match is not applied "
    "again and answers the product as it is now, with `Idempotent-Replayed: true` (remembered for the product's "
    "last 100 keyed changes; 400 when malformed; 422 when reused with another body or If-Match)")}
CART_ADD_KEY = IDEMPOTENCY_KEY | {"required": False, "description": (
    "Names this add to this cart: a retry with the same key, product and quantity adds nothing again and answers the "
    "cart as it is now, with `Idempotent-Replayed: true` (remembered for CART_TTL_SECONDS after the add; "
    "400 when malformed; 422 when reused for another product or quantity)")}
NOTIFICATION_KEY = IDEMPOTENCY_KEY | {"required": False, "description": (
    "Names this message of this admin: a retry with the same key and message sends nothing and answers the same id, "
    "with `Idempotent-Replayed: true` (a message the channel refused is refused again); 503 while a first send "
    "with this key may still be going out; 400 when malformed; 422 when reused for another message")}
PAGE_IF_NONE_MATCH = IF_NONE_MATCH | {"description": "The page's ETag held: 304 without a body while the page is the same"}
HEADERS = {  # route name -> extra request headers
    "catalog-get-product": [IF_NONE_MATCH], "catalog-update-product": [IF_MATCH, PRODUCT_CHANGE_KEY],
    "catalog-list-products": [PAGE_IF_NONE_MATCH], "catalog-search-products": [PAGE_IF_NONE_MATCH],
    "orders-create-order": [IDEMPOTENCY_KEY], "cart-add-item": [CART_ADD_KEY],
    "notify-send-notification": [NOTIFICATION_KEY]}

HEADERS_DEFINED = {
    "X-Request-Id": {"required": True, "description": "The request's id, as in its logs",
                     "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}},
    "ETag": {"required": True, "description": 'The version read or written: `"v<version>"`',
             "schema": {"type": "string", "pattern": '^"v[0-9]+"$'}},
    "Location": {"required": True, "description": "Where to read what was created", "schema": {"type": "string"}},
    "Retry-After": {"required": False, "description": "Seconds to wait before trying again",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "Idempotent-Replayed": {"required": False, "description": "This Idempotency-Key's change was applied before: "
                                                              "not applied again; the body is the resource now",
                            "schema": {"type": "string", "const": "true"}},
}
REQUEST_ID, ETAG, LOCATION, RETRY_AFTER, REPLAYED = ({name: {"$ref": f"#/components/headers/{name}"}}
                                                      for name in HEADERS_DEFINED)
PAGE_ETAG = {"ETag": {"required": True, "description": "The page's content as a strong entity tag",
                      "schema": {"type": "string", "pattern": '^"b[0-9a-f]{24}"$'}}}
SUCCESS_HEADERS = {"catalog-get-product": ETAG, "catalog-update-product": ETAG | REPLAYED,
                   "catalog-list-products": PAGE_ETAG, "catalog-search-products": PAGE_ETAG,
                   "catalog-create-product": ETAG | LOCATION, "orders-create-order": LOCATION,
                   "cart-add-item": REPLAYED, "notify-send-notification": REPLAYED}

# What each error status means (components/responses), and what the gateway adds to it.
ERRORS = {
    400: ("BadRequest", "Malformed request: a body that is not valid JSON, a URL the gateway cannot forward"),
    401: ("Unauthorized", "Missing, invalid or expired token"),
    403: ("Forbidden", "Not allowed for this token"),
    404: ("NotFound", "Not found"),
    409: ("Conflict", "Conflict with the current state"),
    413: ("PayloadTooLarge", "Body over 64 KiB (the function) or 1 MiB (the gateway)"),
    415: ("UnsupportedMediaType", "Body is not JSON"),
    429: ("TooManyRequests", "Over this operation's rate limit (`x-rate-limit`); retry after `Retry-After` seconds"),
    422: ("ValidationError", "Invalid fields or query parameters (unknown ones included), each named in `errors`"),
    500: ("InternalError", "The function failed; it has been logged"),
    502: ("BadGateway", "The gateway got no answer from the function"),
    503: ("ServiceUnavailable", "A function or a store it needs is unavailable; retry after `Retry-After` seconds"),
}
# Route name -> the statuses only it answers (or answers for its own reasons), with what they mean there.
SPECIFIC = {
    "catalog-get-product": {304: "Not Modified: `If-None-Match` names the current version (no body)",
                            404: "No such product, or it is inactive (unless the token is an admin's)"},
    "catalog-create-product": {409: "A product with this SKU exists"},
    "catalog-list-products": {304: "Not Modified: `If-None-Match` names this page's ETag (no body)"},
    "catalog-search-products": {304: "Not Modified: `If-None-Match` names this page's ETag (no body)",
                                503: "`search-timeout`: the search ran past its time limit (a more specific term "
                                     "costs less); or a store is unavailable"},
    "catalog-update-product": {409: "The stock would leave 0..1000000",
                               412: "`If-Match` names no current version (stale, weak or malformed)",
                               428: "`stock_quantity` was sent without `If-Match`"},
    "cart-add-item": {404: "No product with this SKU; or another customer's cart", 409: "More than the product's stock",
                      422: "Invalid fields; or the product is not for sale, or the line would pass 100 units, or "
                           "the cart 50 lines"},
    "cart-set-item-quantity": {404: "The cart has no line for this SKU, or it is another customer's",
                               409: "More than the stock, or the product is no longer for sale"},
    "cart-remove-item": {404: "The cart has no line for this SKU, or it is another customer's"},
    "orders-create-order": {
        400: "Missing or malformed `Idempotency-Key`, or a body that is not valid JSON",
        402: "The card was declined: the order is `payment_failed`, its stock released",
        404: "A product in the order does not exist",
        409: "Out of stock; a request with this key is still running (`Retry-After`); or the order was given up "
             "(`order-abandoned`) or not charged (`payment-not-completed`): send it again with a new key",
        422: "Invalid fields (a card failing the Luhn check or expired included), lines in more than one currency, "
             "a product not for sale, an empty cart, or this key reused with another body"},
    "orders-get-order": {404: "No such order, or another customer's: the same answer"},
    "orders-requeue-outbox": {404: "No dead outbox row has this id"},
    "notify-replay-dead-letter": {409: "The event's data is not JSON", 503: "The broker is unreachable or refused"},
    "notify-send-notification": {422: "Invalid fields; or an email without a subject or template, a recipient that "
                                      "is not an email address (email) or an E.164 number (sms), no body nor "
                                      "template, or an unknown template"},
}

# What another customer gets on an owner-scoped path: the answer for a user id nobody has (routes' `owner`).
OWNER_NOT_FOUND = "Another customer's user id: the same answer as for a user id nobody has"

# Links (route name -> link name -> target route, parameters, request body): what a client or stateful tester
# reads back after creating something.
LINKS = {
    "catalog-create-product": {
        "GetProduct": ("catalog-get-product", {"product_id": "$response.body#/id"}, None),
        "UpdateProduct": ("catalog-update-product", {"product_id": "$response.body#/id"}, None),
        "AddToCart": ("cart-add-item", {}, {"product_sku": "$response.body#/sku"})},
    "catalog-update-product": {"GetProduct": ("catalog-get-product", {"product_id": "$request.path.product_id"}, None)},
    "catalog-list-products": {
        "GetFirstProduct": ("catalog-get-product", {"product_id": "$response.body#/items/0/id"}, None)},
    "catalog-search-products": {
        "GetFirstProduct": ("catalog-get-product", {"product_id": "$response.body#/items/0/id"}, None)},
    "cart-add-item": {
        "GetCart": ("cart-get-cart", {"user_id": "$request.path.user_id"}, None),
        "SetItemQuantity": ("cart-set-item-quantity",
                            {"user_id": "$request.path.user_id", "sku": "$request.body#/product_sku"}, None),
        "RemoveItem": ("cart-remove-item",
                       {"user_id": "$request.path.user_id", "sku": "$request.body#/product_sku"}, None),
        "ClearCart": ("cart-clear-cart", {"user_id": "$request.path.user_id"}, None),
        "OrderCart": ("orders-create-order", {}, {"user_id": "$request.path.user_id"})},
    "orders-create-order": {
        "GetOrder": ("orders-get-order", {"order_id": "$response.body#/id"}, None),
        "ListOrders": ("orders-list-orders", {"user_id": "$response.body#/user_id"}, None)},
    "orders-list-orders": {"GetFirstOrder": ("orders-get-order", {"order_id": "$response.body#/items/0/id"}, None)},
    "orders-list-outbox": {
        "RequeueFirstRow": ("orders-requeue-outbox", {"outbox_id": "$response.body#/items/0/id"}, None)},
    "notify-list-dead-letters": {
        "ReplayFirst": ("notify-replay-dead-letter", {"dead_letter_id": "$response.body#/items/0/id"}, None)},
}


def _model(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def openapi() -> dict:
    routes = public_routes()
    wanted = sorted({(r.request, "validation") for r in routes if r.request} |
                    {(r.response, "serialization") for r in routes if r.response})
    keys, schemas = models_json_schema([(_model(name), mode) for name, mode in wanted], ref_template=REF)
    components = schemas.get("$defs", {})
    twice = sorted(name for name in components if name.endswith(("-Input", "-Output")))
    if twice:  # a model whose input and output schemas differ: generators would see two models of one name
        raise ValueError(f"one schema per model: {twice} differ between requests and responses")
    refs = {name: keys[(_model(name), mode)]["$ref"] for name, mode in wanted}
    paths: dict[str, dict] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    document = {
        "openapi": "3.1.0",
        "info": {"title": "Serverless shop API", "version": "0.1.0", "description": DESCRIPTION},
        "servers": [{"url": "http://127.0.0.1:8080", "description": "make up"}],
        "tags": [{"name": name, "description": description} for name, description in TAGS.items()],
        "paths": paths,
        "components": {
            "schemas": components | {"Problem": PROBLEM},
            "responses": {name: _problem_response(status, text) for status, (name, text) in ERRORS.items()},
            "headers": HEADERS_DEFINED,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }
    _hoist_components(document)
    return document


def _operation(route: Route, refs: dict[str, str]) -> dict:
    parameters = [_path_parameter(name) for name in re.findall(r"\{(\w+)\}", route.path)]
    if route.query:
        parameters += _query_parameters(_model(route.query))
    parameters += HEADERS.get(route.name, [])
    operation: dict = {"operationId": route.name, "summary": route.summary, "tags": [route.name.split("-")[0]],
                       "x-function": route.name, "parameters": parameters, "responses": {}}
    if route.rate_limit is not None:
        operation["x-rate-limit"] = {"requests_per_second": route.rate_limit.per_second,
                                     "burst": route.rate_limit.burst}
    description = _description(route)
    if description:
        operation["description"] = description
    if route.request:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"$ref": refs[route.request]}}}}
    success: dict = {"description": "No content" if route.status == 204 else "Success",
                     "headers": REQUEST_ID | SUCCESS_HEADERS.get(route.name, {})}
    if route.response:
        success["content"] = {"application/json": {"schema": {"$ref": refs[route.response]}}}
    links = LINKS.get(route.name)
    if links:
        success["links"] = {name: _link(*link) for name, link in links.items()}
    operation["responses"][str(route.status)] = success
    specific = SPECIFIC.get(route.name, {})
    for status in _errors(route):
        if status == 304:
            operation["responses"]["304"] = {"description": specific[304],
                                             "headers": REQUEST_ID | SUCCESS_HEADERS.get(route.name, {})}
        elif status in specific:
            operation["responses"][str(status)] = _problem_response(status, specific[status])
        elif status == 404 and route.owner == "path":
            operation["responses"]["404"] = _problem_response(404, OWNER_NOT_FOUND)
        else:
            operation["responses"][str(status)] = {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
    if route.auth in ("user", "admin"):
        operation["security"] = [{"bearer": []}]
    elif route.auth == "optional":
        operation["security"] = [{}, {"bearer": []}]
    return operation


def _problem_response(status: int, description: str) -> dict:
    return {"description": description, "headers": REQUEST_ID | (RETRY_AFTER if status in (409, 429, 503) else {}),
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _errors(route: Route) -> list[int]:
    statuses = {400, 413, 500, 502, 503}
    if route.auth in ("user", "admin"):
        statuses |= {401, 403}
    elif route.auth == "optional":
        statuses.add(401)
    if route.request:
        statuses |= {415, 422}
    if route.query or "{user_id}" in route.path:
        statuses.add(422)
    if "{" in route.path:
        statuses.add(404)
    if route.rate_limit is not None:
        statuses.add(429)
    return sorted(statuses | SPECIFIC.get(route.name, {}).keys())


def _path_parameter(name: str) -> dict:
    schema, description = PATH_PARAMETERS[name]
    return {"name": name, "in": "path", "required": True, "description": description, "schema": dict(schema)}


def _query_parameters(model) -> list[dict]:
    schema = model.model_json_schema(mode="validation")
    parameters = []
    for name, spec in schema["properties"].items():
        spec = _not_null(spec)
        parameter = {"name": name, "in": "query", "required": name in schema.get("required", [])}
        if "description" in spec:
            parameter["description"] = spec.pop("description")
        parameters.append(parameter | {"schema": spec})
    return parameters


def _not_null(spec: dict) -> dict:
    """A query parameter's schema: sent with a value or not at all (an empty value is not null: it is refused)."""
    spec = {key: value for key, value in copy.deepcopy(spec).items() if key != "title"}
    choices = spec.pop("anyOf", None)
    if choices is not None:
        kept = [choice for choice in choices if choice.get("type") != "null"]
        inner = dict(kept[0]) if len(kept) == 1 else {"anyOf": kept}
        said = [text for text in (inner.pop("description", None), spec.get("description")) if text]
        spec |= inner | ({"description": "; ".join(said)} if said else {})
    if spec.get("default", 0) is None:
        del spec["default"]
    return spec


def _link(target: str, parameters: dict, body: dict | None) -> dict:
    link: dict = {"operationId": target}
    if parameters:
        link["parameters"] = parameters
    if body:
        link["requestBody"] = body
    return link


def _description(route: Route) -> str | None:
    """The entry file's docstring, without its leading `METHOD /path (who) —`: the rules an operation keeps."""
    docstring = ast.get_docstring(ast.parse((ROOT / route.source).read_text()))
    if not docstring:
        return None
    first, _, rest = docstring.partition("\n")
    if " — " in first:
        first = first.split(" — ", 1)[1]
    text = (first[:1].upper() + first[1:] + ("\n" + rest if rest else "")).strip()
    return text


def _hoist_components(document: dict) -> None:
    """Replace every schema marked `x-component: Name` by a reference to one `Name` component."""
    components = document["components"]["schemas"]

    def visit(node):
        if isinstance(node, dict):
            name = node.get("x-component")
            if name is not None:
                shared = {key: value for key, value in node.items() if key not in ("x-component", "title")}
                component = components.setdefault(name, shared)
                if {**component, "description": None} != {**shared, "description": None}:
                    raise ValueError(f"two different schemas are marked x-component: {name}")
                reference = {"$ref": REF.format(model=name)}
                if shared.get("description") != component.get("description"):  # what this field says of it
                    reference["description"] = shared["description"]
                return reference
            return {key: visit(value) for key, value in node.items()}
        if isinstance(node, list):
            return [visit(item) for item in node]
        return node

    document["paths"] = visit(document["paths"])
    for name in list(components):
        components[name] = visit(components[name])
    document["components"]["schemas"] = dict(sorted(components.items()))
