"""Field types whose OpenAPI schema states exactly what the server accepts.

- Trimmed text: pydantic trims first and counts after, so "1-200 characters" alone would misstate the rule (a
  value padded with spaces past 200 characters is fine, one made of spaces only is not). The document states it as
  a pattern: optional whitespace, the kept text (first and last characters not whitespace), optional whitespace.
- Whole numbers: JSON Schema's `integer` includes `2.0`; strict pydantic refused it.
- Query flags: `true` or `false`, as clients serialise a boolean.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (AfterValidator, BeforeValidator, Field, PlainValidator, StringConstraints, ValidationInfo,
                      WithJsonSchema)
from pydantic.networks import validate_email

# What pydantic-core's strip removes: Unicode White_Space (Rust's char::is_whitespace), written out so that every
# regex engine reading the document (ECMA-262, Rust, Python) agrees on it.
WHITESPACE = r"\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = r"^[^\x00]*$"


def trimmed_pattern(min_length: int, max_length: int, kept: str = r"[^\x00]", edge: str | None = None) -> str:
    """A pattern matching exactly the strings that keep `min_length`..`max_length` characters of `kept` once
    trimmed; `edge` is what the kept text may start and end with (default: not whitespace, not NUL)."""
    space = f"[{WHITESPACE}]*"
    edge = edge or (f"[^{WHITESPACE}\\x00]" if kept == r"[^\x00]" else kept)
    if max_length == 1:
        body = edge
    else:
        middle = f"{kept}{{{max(min_length - 2, 0)},{max_length - 2}}}"
        body = f"{edge}(?:{middle}{edge})?" if min_length <= 1 else f"{edge}{middle}{edge}"
    if min_length == 0:
        body = f"(?:{body})?"
    return f"^{space}{body}{space}$"


def trimmed(min_length: int, max_length: int, *, lower: bool = False, **schema: Any):
    """A string trimmed (and, with `lower`, lower-cased) before its length is checked, documented exactly.

    It never holds NUL, which PostgreSQL cannot store in text."""
    documented = {"type": "string", "pattern": trimmed_pattern(min_length, max_length),
                  "description": f"Leading and trailing whitespace is removed; {min_length}-{max_length} characters "
                                 "must remain" + (", stored lower-case" if lower else "") + "; no NUL"} | schema
    return Annotated[str, StringConstraints(strip_whitespace=True, to_lower=lower, min_length=min_length,
                                            max_length=max_length, pattern=NO_NUL), WithJsonSchema(documented)]


def text(min_length: int, max_length: int, **schema: Any):
    """A string of `min_length`..`max_length` characters without NUL (which PostgreSQL cannot store in text).

    The document states the bounds inside the pattern: with a `maxLength` of thousands next to a pattern, test
    generators search a long time for values at the bound."""
    documented = {"type": "string", "pattern": f"^[^\\x00]{{{min_length},{max_length}}}$"} | schema
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length, pattern=NO_NUL),
                     WithJsonSchema(documented)]


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("use true or false")


# A boolean query parameter: `true` or `false`, as clients serialise a boolean (not 1/0/yes/no/on/off).
QueryFlag = Annotated[bool, PlainValidator(_flag), WithJsonSchema({"type": "boolean"})]


def _whole(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole_number(minimum: int, maximum: int, **field: Any):
    """An integer from `minimum` to `maximum` in a strict model that, like JSON Schema's `integer`, also takes a
    number with a zero fraction (2.0)."""
    return Annotated[int, Field(ge=minimum, le=maximum, **field), BeforeValidator(_whole)]


# The validation context of a record read back from the shop's own store: what it holds was checked when written.
STORED = {"stored": True}


def _email(value: str, info: ValidationInfo) -> str:
    if info.context is not None and info.context.get("stored"):
        return value  # checked (and normalised) when the record was written
    return validate_email(value)[1]


# pydantic's EmailStr, checked and documented alike (its own validate_email), except that email-validator (~14 ms
# of import: it compiles its grammar's regular expressions) loads on the first address checked, not when a model
# naming the type is built: every orders and notify function names one, few check one. A record read back from our
# own store (validated with the STORED context) is not checked again.
Email = Annotated[str, AfterValidator(_email), WithJsonSchema({"type": "string", "format": "email"})]
