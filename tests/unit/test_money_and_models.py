from decimal import Decimal

import pytest
from pydantic import ValidationError

from functions.catalog.models import ProductQuery, ProductUpdate
from shared.money import Money


def test_money_keeps_exact_decimals_and_serialises_as_string():
    price = Money(amount=Decimal("19.99"), currency="EUR")

    assert price.model_dump(mode="json") == {"amount": "19.99", "currency": "EUR"}


@pytest.mark.parametrize("amount, currency", [("0", "EUR"), ("1.001", "EUR"), ("5", "eur"), ("5", "ABC")])
def test_money_rejects_bad_amounts_and_currencies(amount, currency):
    with pytest.raises(ValidationError):
        Money.model_validate_json(f'{{"amount": "{amount}", "currency": "{currency}"}}')


def test_query_refuses_an_inverted_price_range():
    with pytest.raises(ValidationError):
        ProductQuery.model_validate({"min_price": "10", "max_price": "5"})


def test_update_needs_at_least_one_field_and_no_nulls():
    with pytest.raises(ValidationError):
        ProductUpdate.model_validate_json("{}")
    with pytest.raises(ValidationError):
        ProductUpdate.model_validate_json('{"brand": null}')
    assert ProductUpdate.model_validate_json('{"brand": "Acme"}').model_dump(exclude_unset=True) == {"brand": "Acme"}
