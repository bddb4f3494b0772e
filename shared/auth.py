"""Bearer JWT auth: HS256 tokens signed with SHOP_JWT_SECRET, claims `sub`, `role`, `exp`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import jwt

from shared.errors import Forbidden, Unauthorized
from shared.settings import AuthSettings, settings

Role = Literal["customer", "admin"]
ROLES = ("customer", "admin")


@dataclass(frozen=True)
class User:
    id: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def issue_token(user_id: str, role: Role = "customer", ttl_seconds: int = 3600, secret: str | None = None) -> str:
    """A signed token for `user_id`; used by `make token`, the tests and the load test."""
    secret = secret or settings(AuthSettings).shop_jwt_secret.get_secret_value()
    now = int(time.time())
    return jwt.encode({"sub": user_id, "role": role, "iat": now, "exp": now + ttl_seconds}, secret, algorithm="HS256")


def optional_user(headers) -> User | None:
    """The caller when a token is sent (it must then be valid), else None."""
    header = headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Use 'Authorization: Bearer <token>'")
    secret = settings(AuthSettings).shop_jwt_secret.get_secret_value()
    try:
        claims = jwt.decode(token.strip(), secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The token has expired") from None
    except jwt.InvalidTokenError as error:
        raise Unauthorized(f"The token is invalid: {error}") from None
    role = claims.get("role", "customer")
    if role not in ROLES or not isinstance(claims["sub"], str) or not claims["sub"]:
        raise Unauthorized("The token's claims are invalid")
    return User(id=claims["sub"], role=role)


def require_user(headers) -> User:
    user = optional_user(headers)
    if user is None:
        raise Unauthorized("This endpoint needs a bearer token")
    return user


def require_admin(headers) -> User:
    user = require_user(headers)
    if not user.is_admin:
        raise Forbidden("This endpoint is for admins")
    return user


def require_owner(headers, user_id: str) -> User:
    """Only the user themself may change what belongs to `user_id` (admins included)."""
    user = require_user(headers)
    if user.id != user_id:
        raise Forbidden("You may only change your own resources")
    return user


def require_owner_or_admin(headers, user_id: str) -> User:
    """A customer may act only on their own `user_id`; an admin on anyone's."""
    user = require_user(headers)
    if not user.is_admin and user.id != user_id:
        raise Forbidden("You may only access your own resources")
    return user
