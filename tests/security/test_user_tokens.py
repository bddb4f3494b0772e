"""User tokens are checked like a real API checks them, by the real functions: through the session's gateway, and by
functions started alone with their own keys (rotation; RS256/ES256 from a JWKS this test serves over HTTP)."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import hmac
import json
import select
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from local.processes import free_port
from local.token import hs256_settings, sign, user_claims
from shared.routes import public_routes
from tests.support import TOKEN_KEY_ID, USER_TOKEN_SETTINGS, assert_problem, bearer, function_alone, token, unique

ISSUER, AUDIENCE = USER_TOKEN_SETTINGS["USER_TOKEN_ISSUER"], USER_TOKEN_SETTINGS["USER_TOKEN_AUDIENCE"]
SECRET = json.loads(USER_TOKEN_SETTINGS["USER_TOKEN_HS256_KEYS"])[TOKEN_KEY_ID]
ADMIN_ROUTES = [route for route in public_routes() if route.auth == "admin"]
assert ADMIN_ROUTES, "the route table has no public admin route to test"


def claims(user: str, role: str = "customer", ttl: int = 600, **changes) -> dict:
    """The claims of a token the shop accepts, with `changes` (None removes a claim)."""
    merged = user_claims(user, role, ttl, ISSUER, AUDIENCE) | changes
    return {name: value for name, value in merged.items() if value is not None}


def hs256_by_hand(payload: dict, secret: bytes, kid: str) -> str:
    """An HS256 token keyed with any bytes (PyJWT refuses a PEM key as an HMAC secret; an attacker does not)."""
    def encoded(part: dict) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")

    signing_input = encoded({"alg": "HS256", "typ": "JWT", "kid": kid}) + b"." + encoded(payload)
    signature = base64.urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


def cart(client: httpx.Client | str, user: str, bearer_token: str) -> httpx.Response:
    """GET /cart/{user}?priced=false: a user-token route that asks nothing of the catalog."""
    headers = {"Authorization": f"Bearer {bearer_token}"}
    if isinstance(client, str):
        return httpx.get(f"{client}/cart/{user}", params={"priced": "false"}, headers=headers, timeout=15)
    return client.get(f"/cart/{user}", params={"priced": "false"}, headers=headers)


TAMPERED = {
    "alg none": lambda user: jwt.encode(claims(user), None, algorithm="none", headers={"kid": TOKEN_KEY_ID}),
    "a wrong key": lambda user: sign(claims(user), "another-secret-that-is-long-enough-for-hs256", TOKEN_KEY_ID),
    "expired": lambda user: sign(claims(user, ttl=-120), SECRET, TOKEN_KEY_ID),
    "wrong aud": lambda user: sign(claims(user, aud="another-api"), SECRET, TOKEN_KEY_ID),
    "wrong iss": lambda user: sign(claims(user, iss="https://evil.example.com/"), SECRET, TOKEN_KEY_ID),
    "no aud": lambda user: sign(claims(user, aud=None), SECRET, TOKEN_KEY_ID),
    "no iss": lambda user: sign(claims(user, iss=None), SECRET, TOKEN_KEY_ID),
    "no exp": lambda user: sign(claims(user, exp=None), SECRET, TOKEN_KEY_ID),
    "an unknown kid": lambda user: sign(claims(user), SECRET, "not-a-key-of-ours"),
    "no kid": lambda user: jwt.encode(claims(user), SECRET, algorithm="HS256"),
    "an admin role on a forged signature": lambda user: sign(claims(user, "admin"), "x" * 40, TOKEN_KEY_ID),
    "a header nested past the recursion limit": lambda user: base64.urlsafe_b64encode(b"[" * 3000).decode() + ".e30.x",
}


def test_the_untampered_token_is_accepted(gateway):
    user = unique("tokens")

    assert cart(gateway, user, sign(claims(user), SECRET, TOKEN_KEY_ID)).status_code == 200


@pytest.mark.parametrize("tampering", TAMPERED, ids=list(TAMPERED))
def test_a_tampered_token_is_unauthorized(gateway, tampering):
    user = unique("tokens")

    response = cart(gateway, user, TAMPERED[tampering](user))

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=[route.name for route in ADMIN_ROUTES])
def test_a_customer_token_is_forbidden_on_every_admin_route(gateway, route):
    path = route.path.format(**{name: "0" * 24 for name in route.pattern.groupindex})

    as_customer = gateway.request(route.method, path, json={} if route.request else None, headers=bearer("alice"))
    anonymous = gateway.request(route.method, path, json={} if route.request else None)

    assert assert_problem(as_customer, 403)["type"].endswith("/forbidden")
    assert_problem(anonymous, 401)


def settings_with(shop_settings: dict, keys: dict[str, str], **extra: str) -> dict:
    return {**shop_settings, **hs256_settings(keys), **extra}


def test_keys_rotate_without_downtime_both_kids_accepted_then_the_old_one_removed(shop_settings):
    old, new = "old-secret-" + uuid.uuid4().hex, "new-secret-" + uuid.uuid4().hex
    user = unique("rotation")
    signed_old, signed_new = sign(claims(user), old, "2026-01"), sign(claims(user), new, "2026-02")

    with function_alone("cart-get-cart", settings_with(shop_settings, {"2026-01": old, "2026-02": new})) as both:
        assert cart(both.url, user, signed_old).status_code == 200
        assert cart(both.url, user, signed_new).status_code == 200
        assert_problem(cart(both.url, user, sign(claims(user), new, "2026-01")), 401)  # each kid its own key
    with function_alone("cart-get-cart", settings_with(shop_settings, {"2026-02": new})) as rotated:
        assert cart(rotated.url, user, signed_new).status_code == 200
        assert "kid" in assert_problem(cart(rotated.url, user, signed_old), 401)["detail"]


class IdentityProvider:
    """A JWKS endpoint on a free port: the keys it serves, how often it was fetched, and whether it is down."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.keys = [self.jwk(self.rsa, "rsa-1", "RS256"), self.jwk(self.ec, "ec-1", "ES256")]
        self.fetches = 0
        self.down = False
        self.asked = threading.Event()  # set by each fetch as it arrives
        self.answer = threading.Event()  # a fetch waits for it: cleared, the provider holds the connection open
        self.answer.set()
        self.abandoned = 0  # fetches the function gave up on while the provider held them
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                provider.fetches += 1
                provider.asked.set()
                if not self.held_until_answered():
                    provider.abandoned += 1
                    return
                status, body = (500, b"down") if provider.down else (200, json.dumps({"keys": provider.keys}).encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def held_until_answered(self) -> bool:
                """Wait for `answer`; False when the function gave up the fetch first (closed the connection)."""
                while not provider.answer.wait(0.05):
                    readable, _, _ = select.select([self.connection], [], [], 0)
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        return False
                return True

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/.well-known/jwks.json"

    @staticmethod
    def jwk(private_key, kid: str, algorithm: str) -> dict:
        codec = jwt.algorithms.RSAAlgorithm if algorithm == "RS256" else jwt.algorithms.ECAlgorithm
        return codec.to_jwk(private_key.public_key(), as_dict=True) | {"kid": kid, "alg": algorithm, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def provider():
    running = IdentityProvider()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    yield running
    running.answer.set()
    running.server.shutdown()
    running.server.server_close()
    thread.join(5)


def provider_settings(shop_settings: dict, url: str, **extra: str) -> dict:
    """A function that takes RS256/ES256 tokens from `url`, next to the session's HS256 key."""
    return {**shop_settings, "USER_TOKEN_JWKS_URL": url, "USER_TOKEN_JWKS_TIMEOUT_SECONDS": "1", **extra}


def test_rs256_and_es256_tokens_from_the_providers_jwks_are_accepted_and_confusions_refused(shop_settings, provider):
    user = unique("jwks")
    with function_alone("cart-get-cart", provider_settings(shop_settings, provider.url)) as function:
        assert cart(function.url, user, sign(claims(user), provider.rsa, "rsa-1", "RS256")).status_code == 200
        assert cart(function.url, user, sign(claims(user), provider.ec, "ec-1", "ES256")).status_code == 200
        assert cart(function.url, user, token(user)).status_code == 200  # the HS256 key still works alongside

        confused = hs256_by_hand(claims(user), provider.public_pem(), "rsa-1")
        assert_problem(cart(function.url, user, confused), 401)
        assert_problem(cart(function.url, user, sign(claims(user), provider.ec, "rsa-1", "ES256")), 401)
        assert_problem(cart(function.url, user, sign(claims(user, aud="x"), provider.rsa, "rsa-1", "RS256")), 401)
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert_problem(cart(function.url, user, sign(claims(user), other, "rsa-1", "RS256")), 401)
        for attempt in range(5):  # made-up kids: answered 401 without asking the provider each time
            assert_problem(cart(function.url, user, sign(claims(user), other, f"made-up-{attempt}", "RS256")), 401)

    assert provider.fetches == 1


def until(check, what: str, attempts: int = 100) -> None:
    """Poll `check` (each call is a request) until it holds: the provider is asked again only after a cooldown."""
    for _ in range(attempts):
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"never: {what}")


def test_a_key_the_provider_adds_is_fetched_and_known_keys_outlive_a_provider_outage(shop_settings, provider):
    user = unique("jwks")
    settings = provider_settings(shop_settings, provider.url, USER_TOKEN_JWKS_COOLDOWN_SECONDS="5",
                                 USER_TOKEN_JWKS_LIFESPAN_SECONDS="0.001")
    with function_alone("cart-get-cart", settings) as function:
        assert cart(function.url, user, sign(claims(user), provider.rsa, "rsa-1", "RS256")).status_code == 200
        rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        provider.keys.append(provider.jwk(rotated, "rsa-2", "RS256"))
        signed_rotated = sign(claims(user), rotated, "rsa-2", "RS256")
        until(lambda: cart(function.url, user, signed_rotated).status_code == 200, "the added key is fetched")

        provider.down = True
        unknown = sign(claims(user), rotated, "rsa-3", "RS256")
        until(lambda: cart(function.url, user, unknown).status_code == 503, "a fetch fails")
        assert cart(function.url, user, signed_rotated).status_code == 200
        refused = cart(function.url, user, unknown)
        assert_problem(refused, 503)
        assert int(refused.headers["retry-after"]) >= 1


def test_a_slow_provider_holds_only_the_requests_that_need_its_keys_and_they_share_one_fetch(shop_settings,
                                                                                           provider):
    user = unique("jwks")
    provider.answer.clear()
    settings = provider_settings(shop_settings, provider.url, USER_TOKEN_JWKS_TIMEOUT_SECONDS="5")
    with function_alone("cart-get-cart", settings) as function, \
            concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(cart, function.url, user, sign(claims(user), provider.rsa, "rsa-1", "RS256"))
        assert provider.asked.wait(15), "the function never asked the provider"
        second = pool.submit(cart, function.url, user, sign(claims(user), provider.ec, "ec-1", "ES256"))

        meanwhile = cart(function.url, user, token(user))  # a local key: needs nothing of the provider
        still_waiting = not first.done() and not second.done()
        provider.answer.set()

        assert meanwhile.status_code == 200
        assert still_waiting, "the fetch held the process, or a request did not wait for the fetch under way"
        assert first.result().status_code == 200 and second.result().status_code == 200
    assert provider.fetches == 1 and provider.abandoned == 0


def test_a_known_kid_is_served_while_an_old_key_set_is_fetched_again(shop_settings, provider):
    user = unique("jwks")
    known = sign(claims(user), provider.rsa, "rsa-1", "RS256")
    settings = provider_settings(shop_settings, provider.url, USER_TOKEN_JWKS_TIMEOUT_SECONDS="5",
                                 USER_TOKEN_JWKS_COOLDOWN_SECONDS="5", USER_TOKEN_JWKS_LIFESPAN_SECONDS="0.001")
    with function_alone("cart-get-cart", settings) as function:
        assert cart(function.url, user, known).status_code == 200  # the first fetch, answered
        provider.asked.clear()
        provider.answer.clear()
        # Each request finds the set old; the first one after the cooldown has it fetched again, held open here.
        until(lambda: cart(function.url, user, known).status_code == 200 and provider.asked.is_set(),
              "the old set is fetched again")
        open_while_answered = provider.abandoned == 0
        provider.answer.set()

    assert open_while_answered, "the request that had the set fetched again waited for the fetch to give up"


def test_a_jwks_cooldown_under_five_seconds_is_refused_at_start(shop_settings, provider):
    user = unique("jwks")
    settings = provider_settings(shop_settings, provider.url, USER_TOKEN_JWKS_COOLDOWN_SECONDS="0")
    with function_alone("cart-get-cart", settings) as function:
        refused = cart(function.url, user, token(user))

    assert "USER_TOKEN_JWKS_COOLDOWN_SECONDS" in assert_problem(refused, 503)["detail"]
    assert provider.fetches == 0


def test_a_provider_that_is_down_answers_503_and_is_not_asked_again_on_every_request(shop_settings, provider):
    user = unique("jwks")
    provider.down = True
    with function_alone("cart-get-cart", provider_settings(shop_settings, provider.url)) as function:
        for _ in range(3):
            assert_problem(cart(function.url, user, sign(claims(user), provider.rsa, "rsa-1", "RS256")), 503)
        assert cart(function.url, user, token(user)).status_code == 200  # local keys need no provider

    assert provider.fetches == 1


def test_a_provider_that_never_answers_gives_503_rather_than_a_hang(shop_settings):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections and never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/jwks.json"
    try:
        settings = provider_settings(shop_settings, url, USER_TOKEN_JWKS_TIMEOUT_SECONDS="0.5")
        with function_alone("cart-get-cart", settings) as function:
            user = unique("jwks")
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            assert_problem(cart(function.url, user, sign(claims(user), key, "rsa-1", "RS256")), 503)
    finally:
        silent.close()
