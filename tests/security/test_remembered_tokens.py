"""A user token verified once is remembered (shared.verified_tokens), and remembering it never lets through what
verifying it again would refuse: an expired token, a tampered copy, a token whose key was rotated out.

In this process (shared.auth.verify with settings of the test's own) where the memory can be looked at, and
through the real cart function, which is the one that remembers in the shop."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import pytest

from local.token import hs256_settings, sign, user_claims
from shared import auth
from shared.errors import Unauthorized
from tests.support import assert_problem, unique

ISSUER, AUDIENCE = "https://issuer.test/", "shop-test"


@pytest.fixture
def keys_in_settings(monkeypatch):
    """Set this process's HS256 keys (kid -> secret); each call replaces them, as a redeploy with new settings does."""
    from shared.settings import settings

    def use(keys: dict[str, str]) -> None:
        for name, value in hs256_settings(keys).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("USER_TOKEN_ISSUER", ISSUER)
        monkeypatch.setenv("USER_TOKEN_AUDIENCE", AUDIENCE)
        settings.cache_clear()

    yield use
    settings.cache_clear()


def signed(user: str, secret: str, kid: str, ttl: int = 600) -> str:
    return sign(user_claims(user, "customer", ttl, ISSUER, AUDIENCE), secret, kid)


def verify(token: str) -> auth.User:
    return asyncio.run(auth.verify(token))


def expiry(token: str) -> int:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["exp"]


def secret() -> str:
    return "secret-" + uuid.uuid4().hex


def test_a_verified_token_is_remembered_then_refused_once_it_expires(keys_in_settings):
    key = secret()
    keys_in_settings({"k1": key})
    token = signed(unique("shopper"), key, "k1", ttl=2)
    expires = expiry(token)

    first = verify(token)
    assert verify(token) is first  # answered from memory: the same object, not verified again

    time.sleep(max(0.0, expires - time.time()) + 0.2)
    with pytest.raises(Unauthorized, match="expired"):
        verify(token)


def test_a_tampered_copy_of_a_remembered_token_is_refused(keys_in_settings):
    key = secret()
    keys_in_settings({"k1": key})
    token = signed("victim", key, "k1")
    verify(token)
    header, payload, signature = token.split(".")
    other_payload = base64.urlsafe_b64encode(json.dumps(
        user_claims("attacker", "admin", 600, ISSUER, AUDIENCE)).encode()).rstrip(b"=").decode()
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")

    for tampered in (f"{header}.{other_payload}.{signature}", f"{header}.{payload}.{flipped}",
                     f"{header}.{payload}.", token + "x"):
        with pytest.raises(Unauthorized):
            verify(tampered)
    assert verify(token).id == "victim"


def test_a_remembered_token_is_refused_once_its_key_is_removed_or_replaced(keys_in_settings):
    old, new = secret(), secret()
    keys_in_settings({"k1": old, "k2": new})
    token = signed(unique("shopper"), old, "k1")
    verify(token)
    verify(token)

    keys_in_settings({"k2": new})
    with pytest.raises(Unauthorized, match="kid"):
        verify(token)
    keys_in_settings({"k1": secret(), "k2": new})  # the same kid, another secret
    with pytest.raises(Unauthorized, match="invalid"):
        verify(token)


def test_a_token_that_fails_is_never_remembered(keys_in_settings):
    key = secret()
    keys_in_settings({"k1": key})
    wrong_audience = sign(user_claims("someone", "customer", 600, ISSUER, "another-api"), key, "k1")
    remembered = len(auth._verified)

    for _ in range(2):
        with pytest.raises(Unauthorized, match="Audience"):
            verify(wrong_audience)
    assert len(auth._verified) == remembered


def test_the_cart_function_refuses_a_token_it_accepted_before_once_it_has_expired(gateway):
    from tests.security.test_user_tokens import SECRET, TOKEN_KEY_ID, cart, claims

    user = unique("expiring")
    token = sign(claims(user, ttl=2), SECRET, TOKEN_KEY_ID)
    expires = expiry(token)

    assert cart(gateway, user, token).status_code == 200
    assert cart(gateway, user, token).status_code == 200
    time.sleep(max(0.0, expires - time.time()) + 0.2)
    assert "expired" in assert_problem(cart(gateway, user, token), 401)["detail"]
