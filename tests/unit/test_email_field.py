"""shared.fields.Email is pydantic's EmailStr, checked and documented alike; only email-validator loads later."""

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, EmailStr, ValidationError

from shared.fields import Email

ROOT = Path(__file__).resolve().parents[2]


class Ours(BaseModel):
    model_config = ConfigDict(strict=True)
    email: Email


class Theirs(BaseModel):
    model_config = ConfigDict(strict=True)
    email: EmailStr


@pytest.mark.parametrize("value", ["ada@example.com", "  Ada@Example.COM ", "Ada Lovelace <ada@example.com>",
                                   "ada@münchen.de", "not-an-address", "ada@", "@example.com", "a" * 2050 + "@x.io",
                                   "ada@example.com\r\nBcc: eve@example.com", "ada@[127.0.0.1]", "", 42, None])
def test_an_address_is_taken_or_refused_exactly_as_emailstr_does(value):
    try:
        expected = Theirs(email=value).email
    except ValidationError as refused:
        with pytest.raises(ValidationError) as ours:
            Ours(email=value)
        strip = lambda errors: [{k: e[k] for k in ("type", "msg", "loc")} for e in errors]
        assert strip(ours.value.errors()) == strip(refused.errors())
    else:
        assert Ours(email=value).email == expected


def test_documented_as_emailstr_is():
    assert Ours.model_json_schema()["properties"]["email"] == {
        k: v for k, v in Theirs.model_json_schema()["properties"]["email"].items()}


CONTACT = ("import sys\nfrom pydantic import BaseModel\nfrom shared.fields import STORED, Email\n"
           "class Contact(BaseModel):\n    email: Email | None = None\n")


def printed(code: str) -> list[str]:
    """What `code` prints, run in a fresh interpreter (what it imported is its own)."""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_email_validator_loads_on_the_first_address_checked_not_when_a_model_is_built():
    assert printed(CONTACT + "Contact(); print('email_validator' in sys.modules)\n"
                             "Contact(email='ada@example.com'); print('email_validator' in sys.modules)") == \
        ["False", "True"]


def test_an_address_read_back_from_the_store_is_not_checked_again_nor_loads_email_validator():
    assert printed(CONTACT + "print(Contact.model_validate({'email': 'ada@example.com'}, context=STORED).email)\n"
                             "print('email_validator' in sys.modules)") == ["ada@example.com", "False"]
    with pytest.raises(ValidationError):  # without the context, the same model checks it
        Ours.model_validate({"email": "not-an-address"})


def test_an_order_read_back_from_the_store_answers_its_contact_without_loading_email_validator():
    code = """
import sys, uuid
from datetime import datetime, timezone
from decimal import Decimal
from functions.orders.models import OrderPublic
now = datetime(2026, 1, 2, tzinfo=timezone.utc)
row = {"id": uuid.uuid4(), "user_id": "ada", "status": "paid", "items": [], "total_amount": Decimal("9.90"),
       "currency": "EUR", "card_last4": "4242", "failure_reason": None, "created_at": now, "updated_at": now,
       "shipping_address": {"street": "1 Rue", "city": "Lyon", "postal_code": "69001", "country": "FR"},
       "contact": {"email": "ada@example.com"}}
print(OrderPublic.from_row(row)["contact"]["email"], "email_validator" in sys.modules)
"""
    assert printed(code) == ["ada@example.com", "False"]
