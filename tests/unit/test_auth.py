import pytest

from shared import auth
from shared.errors import Forbidden, Unauthorized

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("SHOP_JWT_SECRET", SECRET)
    auth.settings.cache_clear()
    yield
    auth.settings.cache_clear()


def headers(user_id="alice", role="customer", ttl=60):
    return {"authorization": f"Bearer {auth.issue_token(user_id, role, ttl)}"}


def test_a_valid_token_names_the_user_and_role():
    assert auth.require_user(headers("alice")) == auth.User("alice", "customer")
    assert auth.require_admin(headers("ops", "admin")).is_admin


def test_customers_may_only_touch_their_own_resources():
    assert auth.require_owner_or_admin(headers("alice"), "alice").id == "alice"
    assert auth.require_owner_or_admin(headers("ops", "admin"), "alice").id == "ops"
    with pytest.raises(Forbidden):
        auth.require_owner_or_admin(headers("bob"), "alice")


@pytest.mark.parametrize("value", [None, "Bearer", "Bearer  ", "Token abc", "Bearer abc.def.ghi"])
def test_missing_or_malformed_tokens_are_unauthorized(value):
    with pytest.raises(Unauthorized):
        auth.require_user({} if value is None else {"authorization": value})


def test_expired_tokens_are_unauthorized():
    with pytest.raises(Unauthorized, match="expired"):
        auth.require_user(headers(ttl=-1))


def test_no_token_is_anonymous_for_optional_auth():
    assert auth.optional_user({}) is None
