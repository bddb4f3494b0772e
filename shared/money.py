"""Money: Decimal amounts with two decimal places and ISO 4217 currency codes — never float arithmetic.

Amounts travel as decimal strings ("19.99") both ways, so no client ever parses them into a float, and the OpenAPI
document has one `Money` schema for requests and responses alike.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)

from shared.model import Model

# Active ISO 4217 codes (2024 list), kept as data: a dependency for one lookup table costs more cold start.
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF
CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG
HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA
MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD
RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX
USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWG
""".split())

MAX_AMOUNT = Decimal("9999999999.99")  # 12 digits, 2 of them decimals: what every store keeps exactly
# Amounts sent in: 0.01 to 9999999999.99, at most two decimals, no sign, exponent or leading zero.
AMOUNT_PATTERN = r"^(?:[1-9][0-9]{0,9}(?:\.[0-9]{1,2})?|0\.(?:0[1-9]|[1-9][0-9]?))$"
# Price filters: the same, and zero too.
BOUND_PATTERN = r"^(?:0|[1-9][0-9]{0,9})(?:\.[0-9]{1,2})?$"
_AMOUNT, _BOUND = re.compile(AMOUNT_PATTERN), re.compile(BOUND_PATTERN)


def _known_currency(code: str) -> str:
    if code not in ISO_4217:
        raise ValueError(f"'{code}' is not an ISO 4217 currency code")
    return code


def _decimal(pattern: re.Pattern[str], minimum: Decimal, rule: str):
    def parse(value: object) -> Decimal:
        if isinstance(value, str) and pattern.fullmatch(value):
            return Decimal(value)
        # Python callers (stores, tests) pass Decimals: held to the same bounds and precision.
        if isinstance(value, Decimal) and value.is_finite() and minimum <= value <= MAX_AMOUNT \
                and value == value.quantize(Decimal("0.01")):
            return value
        raise ValueError(rule)

    return parse


# Documented as the list itself; `x-component` asks the OpenAPI generator for one shared `Currency` schema.
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$"), AfterValidator(_known_currency), WithJsonSchema(
    {"type": "string", "enum": sorted(ISO_4217), "description": "ISO 4217 currency code", "examples": ["EUR"],
     "x-component": "Currency"})]
_TWO_DECIMALS = PlainSerializer(lambda value: f"{value:.2f}", return_type=str, when_used="json")
# Amounts the API answers (prices, line and order totals): always two decimals.
DecimalString = Annotated[Decimal, _TWO_DECIMALS, WithJsonSchema(
    {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$", "examples": ["19.99"],
     "description": "A decimal amount with two decimals, as a string"}, mode="serialization")]
Amount = Annotated[Decimal, PlainValidator(_decimal(
    _AMOUNT, Decimal("0.01"), 'a decimal string from "0.01" to "9999999999.99" with at most two decimals')),
    _TWO_DECIMALS, WithJsonSchema({
        "type": "string", "pattern": AMOUNT_PATTERN, "examples": ["19.99"],
        "description": 'A decimal string from "0.01" to "9999999999.99", at most two decimals (answered with two)'})]
PriceBound = Annotated[Decimal, PlainValidator(_decimal(
    _BOUND, Decimal("0"), 'a decimal string from "0" to "9999999999.99" with at most two decimals')),
    WithJsonSchema({"type": "string", "pattern": BOUND_PATTERN, "examples": ["20", "99.90"],
                    "description": 'A decimal string from "0" to "9999999999.99", at most two decimals'})]


class Money(Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    amount: Amount
    currency: Currency
