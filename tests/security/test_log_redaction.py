"""What every log line goes through: secrets removed, personal data masked; settings errors name, never show."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import BaseModel, Field, ValidationError

from shared.errors import ServiceUnavailable
from shared.logs import JsonFormatter, mask_recipient, never_log, redact
from shared.settings import PostgresSettings, UserTokenSettings, settings


def test_recipients_are_masked():
    assert mask_recipient("alice@example.com") == "a***@example.com"
    assert mask_recipient("+33612345678") == "+33*******78"
    assert mask_recipient("user:alice") == "***"


def test_pydantic_input_values_url_passwords_and_registered_secrets_never_show():
    class Strict(BaseModel):
        url: str = Field(pattern="^postgres://")

    with pytest.raises(ValidationError) as invalid:
        Strict(url="mysql://root:hunter22@db")
    never_log("registered-secret-value")
    line = redact(f"{invalid.value!r} postgres://app:s3cret@db/shop registered-secret-value")
    assert "hunter22" not in line and "s3cret" not in line and "registered-secret-value" not in line
    assert "input_value=[hidden]" in line and "postgres://app:[secret]@db/shop" in line


def test_e_mails_phones_and_card_numbers_are_masked_anywhere_in_a_line():
    line = redact('{"detail": "bob.smith@example.com +447700900123 4242 4242 4242 4242 order 1764117302123"}')
    assert line == '{"detail": "b***@example.com +44********23 [card ...4242] order 1764117302123"}'


def test_a_misconfigured_setting_is_named_with_its_problem_and_its_value_never_shows(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "pgsql://:canary-password@db")
    monkeypatch.setenv("USER_TOKEN_HS256_KEYS", '{"k": "too-short-canary"}')
    monkeypatch.setenv("USER_TOKEN_ISSUER", "https://issuer.example")
    monkeypatch.setenv("USER_TOKEN_AUDIENCE", "shop")
    settings.cache_clear()
    try:
        for kind, name in ((PostgresSettings, "DATABASE_URL"), (UserTokenSettings, "USER_TOKEN_HS256_KEYS")):
            with pytest.raises(ServiceUnavailable) as failed:
                settings(kind)
            assert name in failed.value.detail and "canary" not in failed.value.detail
            assert failed.value.__cause__ is None and failed.value.__suppress_context__
            record = logging.LogRecord("shop", logging.ERROR, __file__, 1, "failed", None,
                                       (type(failed.value), failed.value, failed.value.__traceback__))
            record.context = repr(failed.value.__context__)  # even a context someone chose to log
            assert "canary" not in json.dumps(JsonFormatter().format(record))
    finally:
        settings.cache_clear()


def test_the_example_secrets_placeholder_is_refused_as_a_user_token_key(monkeypatch):
    monkeypatch.setenv("USER_TOKEN_HS256_KEYS", '{"2026-01": "CHANGE-ME-to-at-least-32-random-characters"}')
    monkeypatch.setenv("USER_TOKEN_ISSUER", "https://issuer.example")
    monkeypatch.setenv("USER_TOKEN_AUDIENCE", "shop")
    settings.cache_clear()
    try:
        with pytest.raises(ServiceUnavailable) as refused:
            settings(UserTokenSettings)
        assert "USER_TOKEN_HS256_KEYS" in refused.value.detail and "CHANGE-ME" not in refused.value.detail
    finally:
        settings.cache_clear()


def test_each_user_token_key_is_kept_out_of_logs_even_alone(monkeypatch):
    from shared.auth import Keys

    key = "a-single-user-token-key-logged-alone-0123456789"
    monkeypatch.setenv("USER_TOKEN_HS256_KEYS", json.dumps({"k1": key}))
    monkeypatch.setenv("USER_TOKEN_ISSUER", "https://issuer.example")
    monkeypatch.setenv("USER_TOKEN_AUDIENCE", "shop")
    settings.cache_clear()
    try:
        Keys(settings(UserTokenSettings))
        assert key not in redact(f'{{"detail": "{key}"}}')
    finally:
        settings.cache_clear()
