"""The rules openapi.json states are the rules the models enforce: a value the document's pattern accepts is
accepted, and one it refuses is refused."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ConfigDict, TypeAdapter, ValidationError

from functions.catalog.models import IMAGE_URL_PATTERN, ImageUrl, ProductCreate, ProductUpdate
from functions.orders.models import Address, Payment
from local.deploy.openapi import openapi
from shared import ids
from shared.errors import NotFound, Unprocessable
from shared.fields import QueryFlag, text, trimmed, whole_number
from shared.money import AMOUNT_PATTERN, Money

# Whitespace of every kind pydantic trims or not, NUL, and ordinary characters: where the edge cases are.
CHARACTERS = st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2003\u200b\u2028\u3000\ufeff\x00aZ9-é"))


def _accepts(adapter: TypeAdapter, value) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def _schema_accepts(adapter: TypeAdapter, value: str) -> bool:
    return re.fullmatch(adapter.json_schema()["pattern"], value) is not None


@pytest.mark.parametrize("min_length, max_length", [(0, 3), (1, 1), (1, 4), (2, 5)])
def test_trimmed_text_is_documented_exactly(min_length, max_length):
    adapter = TypeAdapter(trimmed(min_length, max_length))

    @settings(max_examples=400, database=None, suppress_health_check=list(HealthCheck), deadline=None)
    @given(st.text(CHARACTERS, max_size=max_length + 4))
    def agree(value):
        assert _accepts(adapter, value) == _schema_accepts(adapter, value), repr(value)

    agree()


def test_a_postal_code_is_documented_exactly():
    adapter = TypeAdapter(Address)
    pattern = Address.model_json_schema()["properties"]["postal_code"]["pattern"]
    base = {"street": "1 Main St", "city": "Lyon", "country": "FR"}

    @settings(max_examples=400, database=None, suppress_health_check=list(HealthCheck), deadline=None)
    @given(st.text(st.sampled_from(list(" \t\u3000\x00aZ9-_")), max_size=15))
    def agree(value):
        assert _accepts(adapter, base | {"postal_code": value}) == bool(re.fullmatch(pattern, value)), repr(value)

    agree()


def test_text_refuses_nul_and_states_its_bounds():
    adapter = TypeAdapter(text(1, 5))

    assert [_accepts(adapter, value) for value in ("", "a", "abcde", "abcdef", "a\x00")] == [
        False, True, True, False, False]
    assert adapter.json_schema() == {"type": "string", "pattern": "^[^\\x00]{1,5}$"}


@pytest.mark.parametrize("amount, accepted", [
    ("19.99", True), ("0.01", True), ("19.9", True), ("9999999999.99", True), ("5", True),
    ("0", False), ("0.00", False), ("1.001", False), ("019.99", False), ("1e3", False), (" 5", False),
    ("+5", False), ("10000000000", False), ("", False), (19.99, False), (5, False)])
def test_money_amounts_are_decimal_strings_as_documented(amount, accepted):
    assert _accepts(TypeAdapter(Money), {"amount": amount, "currency": "EUR"}) is accepted
    assert (isinstance(amount, str) and re.fullmatch(AMOUNT_PATTERN, amount) is not None) is accepted


def test_money_has_one_schema_for_requests_and_responses():
    assert Money.model_json_schema(mode="validation") == Money.model_json_schema(mode="serialization")
    assert Money(amount=Decimal("19.9"), currency="EUR").model_dump(mode="json") == {"amount": "19.90",
                                                                                     "currency": "EUR"}


def test_a_currency_must_be_a_listed_iso_4217_code():
    schema = openapi()["components"]["schemas"]["Currency"]

    assert "EUR" in schema["enum"] and "ABC" not in schema["enum"]
    assert not _accepts(TypeAdapter(Money), {"amount": "1", "currency": "ABC"})


def test_whole_numbers_take_a_zero_fraction_like_json_schema_integers():
    adapter = TypeAdapter(whole_number(1, 100), config=ConfigDict(strict=True))  # as in the request models

    assert [_accepts(adapter, value) for value in (2, 2.0, 2.5, "2", True, 0, 101.0)] == [
        True, True, False, False, False, False, False]


def test_query_flags_are_true_or_false_only():
    adapter = TypeAdapter(QueryFlag)

    assert [_accepts(adapter, value) for value in ("true", "false", "1", "yes", "True")] == [
        True, True, False, False, False]


def test_card_numbers_are_digits_with_single_separators_and_pass_luhn():
    def valid(number):
        return _accepts(TypeAdapter(Payment), {"card_number": number, "expiry": "12/99", "cvv": "123"})

    assert [valid(number) for number in ("4242 4242 4242 4242", "4242-4242-4242-4242", "4242424242424242",
                                         "4242  4242 4242 4242", "4242424242424241", "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢")] == [
        True, True, True, False, False, False]
    assert not _accepts(TypeAdapter(Payment), {"card_number": "4242424242424242", "expiry": "12/99", "cvv": "١٢٣"})


@settings(max_examples=300, database=None, suppress_health_check=list(HealthCheck), deadline=None)
@given(st.from_regex(IMAGE_URL_PATTERN, fullmatch=True).filter(lambda url: len(url) <= 2048))
def test_every_image_url_the_document_allows_is_accepted(url):
    assert _accepts(TypeAdapter(ImageUrl), url)


def test_an_update_sends_fields_with_values_and_never_both_stock_fields():
    schema = ProductUpdate.model_json_schema()

    assert schema["minProperties"] == 1 and schema["not"] == {"required": ["stock_quantity", "stock_adjustment"]}
    assert all("anyOf" not in spec and "default" not in spec for spec in schema["properties"].values())
    assert schema["properties"]["stock_adjustment"]["not"] == {"const": 0}


def test_no_model_has_two_schemas():
    names = openapi()["components"]["schemas"]

    assert not [name for name in names if name.endswith(("-Input", "-Output"))]
    assert {"Money", "ProductPublic", "ProductPage", "ProductCreate"} <= names.keys()
    assert ProductCreate.model_json_schema()["properties"]["price"] == {"$ref": "#/$defs/Money"}


def test_path_ids_are_checked_whole():
    assert ids.user_id("alice") == "alice"
    with pytest.raises(Unprocessable):
        ids.user_id("alice\n")
    with pytest.raises(NotFound):
        ids.uuid_or_not_found("{12345678-1234-1234-1234-123456789abc}", "order")
    assert str(ids.uuid_or_not_found("12345678-1234-1234-1234-123456789ABC", "order")).endswith("789abc")
