"""The Python client a caller generates from the served openapi.json, with openapi-python-client as its README
says, generates without a warning and runs the whole journey: the document and the code cannot drift apart."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

from tests.support import token, unique

BIN = Path(sys.executable).parent
PACKAGE = "shop_client"


@contextmanager
def generated_client(url: str):
    """The generated package, importable while the block runs; its directory is removed after."""
    with tempfile.TemporaryDirectory(prefix="shop-client-") as work:
        # PATH: the generator formats its output with ruff, installed next to it.
        result = subprocess.run(
            [str(BIN / "openapi-python-client"), "generate", "--url", f"{url}/openapi.json", "--meta", "none",
             "--output-path", str(Path(work) / PACKAGE)],
            cwd=work, env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
            capture_output=True, text=True, timeout=180)
        output = (result.stdout + result.stderr).strip()
        assert result.returncode == 0, output
        assert output.splitlines() == [f"Generating {Path(work) / PACKAGE}"], f"the generator warned:\n{output}"
        sys.path.insert(0, work)
        try:
            yield importlib.import_module(PACKAGE)
        finally:
            sys.path.remove(work)
            for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
                del sys.modules[name]


def test_a_generated_client_shops_from_product_to_order(shop):
    with generated_client(shop.url) as client_package:
        models = importlib.import_module(f"{PACKAGE}.models")
        shopper = unique("client")
        admin = client_package.AuthenticatedClient(base_url=shop.url, token=token("ops", "admin"),
                                                   raise_on_unexpected_status=True)
        customer = client_package.AuthenticatedClient(base_url=shop.url, token=token(shopper),
                                                      raise_on_unexpected_status=True)
        sku = unique("CLIENT")

        created = _call("catalog.catalog_create_product", client=admin, body=models.ProductCreate(
            sku=sku, name="Generated Kettle", brand="Acme", stock_quantity=5, categories=["kitchen"],
            price=models.Money(amount="12.50", currency=models.Currency.EUR)))
        found = _call("catalog.catalog_get_product", created.id, client=customer)
        missing = _call("catalog.catalog_get_product", "0" * 24, client=customer)
        added = _call("cart.cart_add_item", shopper, client=customer, body=models.AddItem(product_sku=sku, quantity=2))
        in_cart = _call("cart.cart_get_cart", shopper, client=customer)
        order = _call("orders.orders_create_order", client=customer, idempotency_key=str(uuid.uuid4()),
                      body=models.CreateOrder(
                          user_id=shopper,
                          shipping_address=models.Address(street="1 Main St", city="Lyon", postal_code="69001",
                                                           country="FR"),
                          payment=models.Payment(card_number="4242 4242 4242 4242", expiry="12/99", cvv="123"),
                          contact=models.Contact(email="client@example.com")))
        read_back = _call("orders.orders_get_order", order.id, client=customer)
        history = _call("orders.orders_list_orders", shopper, client=customer)

    assert isinstance(created, models.ProductPublic) and created.price.amount == "12.50"
    assert created.price.currency is models.Currency.EUR
    assert found.sku == sku and found.categories == ["kitchen"]
    assert isinstance(missing, models.Problem) and missing.status == 404
    assert isinstance(added, models.CartPublic) and [(line.product_sku, line.quantity) for line in added.items] == [
        (sku, 2)]
    assert in_cart.total_price == "25.00" and in_cart.priced
    assert isinstance(order, models.OrderPublic) and order.status in (models.OrderPublicStatus.PAID,
                                                                       models.OrderPublicStatus.CONFIRMED)
    assert (order.total_price, order.card_last4) == ("25.00", "4242")
    assert read_back.id == order.id and [line.quantity for line in read_back.items] == [2]
    assert [item.id for item in history.items] == [order.id]


def _call(operation: str, *args, **kwargs):
    """`<tag>.<operationId>`'s sync(): the parsed body, a model of the operation's documented response."""
    module = importlib.import_module(f"{PACKAGE}.api.{operation}")
    return module.sync(*args, **kwargs)
