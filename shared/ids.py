"""Identifiers that arrive in paths: validated before anything is looked up.

The patterns are also what the OpenAPI document states for each path parameter.
"""

from __future__ import annotations

import re
import uuid

from shared.errors import NotFound, Unprocessable

USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# The one spelling of a UUID the API answers and accepts in paths (any case): 8-4-4-4-12 hex digits.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_USER_ID, _UUID, _SKU = re.compile(USER_ID_PATTERN), re.compile(UUID_PATTERN), re.compile(SKU_PATTERN)


def user_id(value: str) -> str:
    # fullmatch: `$` alone would also accept a trailing newline.
    if not _USER_ID.fullmatch(value):
        raise Unprocessable("The user id is invalid", errors=[{
            "field": "path.user_id", "message": "1-64 letters, digits, '.', '_', '@' or '-'", "type": "pattern"}])
    return value


def uuid_or_not_found(value: str, what: str) -> uuid.UUID:
    """A path id that must be a UUID: anything else names nothing, so it is not found (404), like an unknown one."""
    if not _UUID.fullmatch(value):
        raise NotFound(f"No {what} '{value}'")
    return uuid.UUID(value)


def cart_line_sku(value: str) -> str:
    """A path SKU of a cart line: anything that cannot be a SKU names no line (404), like an absent one; in
    particular never the cart's own field (`@updated_at`), which shares its Redis hash."""
    if not _SKU.fullmatch(value):
        raise NotFound(f"The cart has no line for '{value}'")
    return value
