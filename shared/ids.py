"""Identifiers that arrive in paths: validated before anything is looked up."""

from __future__ import annotations

import re
import uuid

from shared.errors import NotFound, Unprocessable

USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
_USER_ID = re.compile(USER_ID_PATTERN)


def user_id(value: str) -> str:
    if not _USER_ID.match(value):
        raise Unprocessable("The user id is invalid", errors=[{
            "field": "path.user_id", "message": "1-64 letters, digits, '.', '_', '@' or '-'", "type": "pattern"}])
    return value


def uuid_or_not_found(value: str, what: str) -> uuid.UUID:
    """A path id that must be a UUID: anything else names nothing, so it is not found (404), like an unknown one."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"No {what} '{value}'") from None
