"""Owner checks that reveal nothing (OWASP API1), on every owner-scoped route of the route table: another customer's
cart, order history or order answers 404, exactly as the same caller's request for what nobody has; nothing of the
owner's changes; the owner and admins keep their access."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import httpx
import pytest

from local.processes import free_port
from shared.routes import ROUTES, Route
from tests.checkout import order_body, place, product
from tests.support import ADMIN, assert_problem, bearer, function_alone, unique

OWNER_SCOPED = [route for route in ROUTES if route.owner]
PATH_OWNED = [route for route in OWNER_SCOPED if route.owner == "path"]
# A valid body for each request model these routes take, so that a refusal is the owner check's, not validation's.
BODIES = {"functions.cart.models:AddItem": lambda sku: {"product_sku": sku, "quantity": 1},
          "functions.cart.models:SetQuantity": lambda sku: {"quantity": 2}}
assert {route.owner for route in OWNER_SCOPED} == {"path", "record"}
assert {route.request for route in OWNER_SCOPED if route.request} <= BODIES.keys(), "give the new route a body"


@dataclass(frozen=True)
class Owned:
    """A customer with a cart line and a placed order."""

    user: str
    sku: str
    order_id: str


@pytest.fixture(scope="module")
def item(gateway):
    return product(gateway, stock=100)


@pytest.fixture
def owned(gateway, shop, item) -> Owned:
    user = unique("owner")
    added = gateway.post(f"/cart/{user}/items", json={"product_sku": item["sku"]}, headers=bearer(user))
    assert added.status_code == 200, added.text
    placed = place(shop.url, user, order_body(user, [(item, 1)]), key=uuid.uuid4().hex)
    assert placed is not None and placed.status_code == 201, placed and placed.text
    return Owned(user, item["sku"], placed.json()["id"])


def send(client: httpx.Client, route: Route, user: str, order_id: str, sku: str, headers: dict) -> httpx.Response:
    values = {"user_id": user, "order_id": order_id, "sku": sku}
    path = route.path.format(**{name: values[name] for name in route.pattern.groupindex})
    body = BODIES[route.request](sku) if route.request else None
    return client.request(route.method, path, json=body, headers=headers)


def shape(response: httpx.Response, *ids: str) -> tuple:
    """What a caller can compare between two answers: status, headers present, problem body (ids blanked)."""
    body = assert_problem(response, 404)
    body.pop("request_id", None)
    text = json.dumps(body, sort_keys=True)
    for value in ids:
        text = text.replace(value, "<id>")
    return response.status_code, sorted(set(response.headers) - {"date", "content-length"}), text


@pytest.mark.parametrize("route", OWNER_SCOPED, ids=[route.name for route in OWNER_SCOPED])
def test_another_customers_resource_answers_exactly_like_a_missing_one(gateway, owned, route):
    stranger = bearer(unique("stranger"))
    nobody, no_order = unique("nobody"), str(uuid.uuid4())

    theirs = send(gateway, route, owned.user, owned.order_id, owned.sku, stranger)
    missing = send(gateway, route, nobody, no_order, owned.sku, stranger)

    assert shape(theirs, owned.user, owned.order_id) == shape(missing, nobody, no_order)
    cart = gateway.get(f"/cart/{owned.user}", params={"priced": "false"}, headers=bearer(owned.user)).json()
    assert [(line["product_sku"], line["quantity"]) for line in cart["items"]] == [(owned.sku, 1)]
    assert send(gateway, route, owned.user, owned.order_id, owned.sku, bearer(owned.user)).status_code < 400


@pytest.mark.parametrize("route", [r for r in OWNER_SCOPED if r.method == "GET"],
                         ids=[r.name for r in OWNER_SCOPED if r.method == "GET"])
def test_admins_still_read_every_owner_scoped_resource(gateway, owned, route):
    assert send(gateway, route, owned.user, owned.order_id, owned.sku, ADMIN).status_code == 200


@pytest.mark.parametrize("route", PATH_OWNED, ids=[route.name for route in PATH_OWNED])
def test_a_path_owner_check_is_decided_before_any_store_is_asked(shop_settings, route):
    nowhere = f"127.0.0.1:{free_port()}"
    stores_down = {**shop_settings, "REDIS_URL": f"redis://{nowhere}/0", "MONGODB_URL": f"mongodb://{nowhere}",
                   "DATABASE_URL": f"postgresql://postgres@{nowhere}/shop"}
    owner = unique("owner")

    with function_alone(route.name, stores_down) as function, httpx.Client(base_url=function.url, timeout=15) as client:
        stranger = send(client, route, owner, str(uuid.uuid4()), "SKU-1", bearer(unique("stranger")))
        own = send(client, route, owner, str(uuid.uuid4()), "SKU-1", bearer(owner))

    assert_problem(stranger, 404)
    assert_problem(own, 503)
