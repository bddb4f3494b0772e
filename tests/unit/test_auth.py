"""User-token checks that need no server: claims, owner answers. Tokens over HTTP: tests/security/."""

import re
from asyncio import run
from pathlib import Path

import pytest

from local.token import hs256_settings, issue_token
from shared import auth
from shared.errors import Forbidden, NotFound, ServiceUnavailable, Unauthorized

TOKENS = hs256_settings({"unit-1": "unit-test-secret-that-is-long-enough-for-hs256"})


@pytest.fixture(autouse=True)
def token_settings(monkeypatch):
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    auth.settings.cache_clear()
    yield
    auth.settings.cache_clear()


def headers(user_id="alice", role="customer", ttl=60):
    return {"authorization": f"Bearer {issue_token(user_id, role, ttl, settings=TOKENS)}"}


def test_a_valid_token_names_the_user_and_role():
    assert run(auth.require_user(headers("alice"))) == auth.User("alice", "customer")
    assert run(auth.require_admin(headers("ops", "admin"))).is_admin


def test_another_customer_is_told_not_found_and_an_admin_forbidden_where_admins_may_not_change():
    assert run(auth.require_owner(headers("alice"), "alice", "cart")).id == "alice"
    assert run(auth.require_owner(headers("ops", "admin"), "alice", "cart", admin_may=True)).id == "ops"
    with pytest.raises(NotFound, match="No cart for user 'alice'"):
        run(auth.require_owner(headers("bob"), "alice", "cart", admin_may=True))
    with pytest.raises(Forbidden):
        run(auth.require_owner(headers("ops", "admin"), "alice", "cart"))


@pytest.mark.parametrize("value", [None, "Bearer", "Bearer  ", "Token abc", "Bearer abc.def.ghi"])
def test_missing_or_malformed_tokens_are_unauthorized(value):
    with pytest.raises(Unauthorized):
        run(auth.require_user({} if value is None else {"authorization": value}))


def test_expired_tokens_are_unauthorized():
    with pytest.raises(Unauthorized, match="expired"):
        run(auth.require_user(headers(ttl=-1)))


def test_no_token_is_anonymous_for_optional_auth():
    assert run(auth.optional_user({})) is None


@pytest.mark.parametrize("variables", [{"USER_TOKEN_HS256_KEYS": "{}"}, {"USER_TOKEN_HS256_KEYS": '{"k": "short"}'},
                                       {"USER_TOKEN_ISSUER": ""}, {"USER_TOKEN_JWKS_URL": "https://idp.example/jwks",
                                                                   "USER_TOKEN_JWKS_COOLDOWN_SECONDS": "0"}])
def test_settings_without_a_usable_key_or_issuer_are_refused_naming_the_variable(monkeypatch, variables):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ServiceUnavailable, match="USER_TOKEN_"):
        run(auth.require_user(headers()))


def test_every_user_check_in_a_function_is_awaited():
    # An un-awaited check is a coroutine object that is never run: the request would go on unchecked.
    checks = re.compile(r"(?<![\w.])(?:(await)\s+)?(require_user|require_admin|require_owner|optional_user)\(")
    calls = [(path, match) for path in Path("functions").rglob("*.py") for match in checks.finditer(path.read_text())]

    assert calls
    assert [str(path) for path, match in calls if not match.group(1)] == []
