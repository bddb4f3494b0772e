from decimal import Decimal

import pytest

from functions.cart.service import product_to_add, view
from shared.catalog_contract import CatalogItem
from shared.errors import NotFound, Unprocessable
from shared.money import Money


def item(sku, amount="2.50", currency="EUR", active=True, stock=10):
    return CatalogItem(sku=sku, id="x" * 24, name=f"Product {sku}", price=Money(amount=Decimal(amount), currency=currency),
                       stock_quantity=stock, is_active=active)


def test_totals_count_only_available_lines():
    cart = view("u", {"A": 2, "B": 1, "C": 4}, {"A": item("A"), "B": item("B", active=False)}, None)

    assert cart.total_price == Decimal("5.00") and cart.currency == "EUR"
    assert [line.available for line in cart.items] == [True, False, False]
    assert cart.total_items == 7


def test_mixed_currencies_have_no_total():
    cart = view("u", {"A": 1, "B": 1}, {"A": item("A"), "B": item("B", currency="USD")}, None)

    assert cart.mixed_currencies and cart.total_price is None and cart.currency is None


def test_without_the_catalog_lines_are_shown_unpriced():
    cart = view("u", {"A": 3}, None, None)

    assert not cart.priced and cart.total_price is None
    assert cart.items[0].available is None and cart.items[0].quantity == 3


def test_only_existing_active_products_can_be_added():
    with pytest.raises(NotFound):
        product_to_add("A", {})
    with pytest.raises(Unprocessable):
        product_to_add("A", {"A": item("A", active=False)})
    assert product_to_add("A", {"A": item("A")}).sku == "A"
