"""`make token USER=alice [ROLE=admin]`: print a bearer token the local shop (or the configured one) accepts.

The only place that mints user tokens: no function can. It signs with an HS256 key of USER_TOKEN_HS256_KEYS (the
last one listed, the newest, unless --kid names another) for USER_TOKEN_ISSUER and USER_TOKEN_AUDIENCE, read from
the environment or `make up`'s local defaults. The tests, the load test and the smoke test mint through it too.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping

import jwt

from local.config import LOCAL_DEFAULTS, local_setting

TOKEN_SETTINGS = ("USER_TOKEN_ISSUER", "USER_TOKEN_AUDIENCE", "USER_TOKEN_HS256_KEYS")


def local_token_settings() -> dict[str, str]:
    """The user-token settings of the environment, else of `make up`."""
    return {name: local_setting(name) for name in TOKEN_SETTINGS}


def hs256_settings(keys: Mapping[str, str]) -> dict[str, str]:
    """The settings of a shop with the local issuer and audience that accepts any of `keys` (kid -> secret)."""
    return {"USER_TOKEN_ISSUER": LOCAL_DEFAULTS["USER_TOKEN_ISSUER"],
            "USER_TOKEN_AUDIENCE": LOCAL_DEFAULTS["USER_TOKEN_AUDIENCE"], "USER_TOKEN_HS256_KEYS": json.dumps(keys)}


def user_claims(user_id: str, role: str, ttl_seconds: int, issuer: str, audience: str) -> dict:
    now = int(time.time())
    return {"sub": user_id, "role": role, "iss": issuer, "aud": audience, "iat": now, "exp": now + ttl_seconds}


def sign(claims: dict, key, kid: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


def issue_token(user_id: str, role: str = "customer", ttl_seconds: int = 3600,
                settings: Mapping[str, str] | None = None, kid: str | None = None) -> str:
    """A token for `user_id` that a shop with `settings` (default: the local ones) accepts."""
    settings = settings or local_token_settings()
    keys = json.loads(settings["USER_TOKEN_HS256_KEYS"])
    kid = kid or list(keys)[-1]
    claims = user_claims(user_id, role, ttl_seconds, settings["USER_TOKEN_ISSUER"], settings["USER_TOKEN_AUDIENCE"])
    return sign(claims, keys[kid], kid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--user", required=True)
    parser.add_argument("--role", choices=["customer", "admin"], default="customer")
    parser.add_argument("--ttl", type=int, default=24 * 3600, help="seconds until the token expires")
    parser.add_argument("--kid", help="the key to sign with (default: the last of USER_TOKEN_HS256_KEYS)")
    options = parser.parse_args()
    print(issue_token(options.user, options.role, options.ttl, kid=options.kid))


if __name__ == "__main__":
    main()
