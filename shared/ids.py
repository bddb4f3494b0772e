"""Identifiers that arrive in paths: validated before anything is looked up.

The patterns are also what the OpenAPI document states for each path parameter.
"""

from __future__ import annotations

import re
import uuid

from shared.errors import BadRequest, NotFound, Unprocessable

USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# The one spelling of a UUID the API answers and accepts in paths (any case): 8-4-4-4-12 hex digits.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# An Idempotency-Key header: what names one request among its retries (checkout, a product change, a cart add, a
# notification).
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,64}$"
# A stock reservation's id (the caller's: an order id): it also names a field of the products holding its stock.
RESERVATION_ID_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
_USER_ID, _UUID, _SKU = re.compile(USER_ID_PATTERN), re.compile(UUID_PATTERN), re.compile(SKU_PATTERN)
_IDEMPOTENCY_KEY, _RESERVATION_ID = re.compile(IDEMPOTENCY_KEY_PATTERN), re.compile(RESERVATION_ID_PATTERN)


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


def reservation_id(value: str) -> str:
    """A path reservation id: anything a reservation could not have been made with names none (404)."""
    if not _RESERVATION_ID.fullmatch(value):
        raise NotFound(f"No reservation '{value[:64]}'")
    return value


def cart_line_sku(value: str) -> str:
    """A path SKU of a cart line: anything that cannot be a SKU names no line (404), like an absent one; in
    particular never the cart's own field (`@updated_at`), which shares its Redis hash."""
    if not _SKU.fullmatch(value):
        raise NotFound(f"The cart has no line for '{value}'")
    return value


def idempotency_key(headers, *, required: bool) -> str | None:
    """The request's Idempotency-Key (None when absent and not `required`); malformed or missing: 400."""
    value = headers.get("idempotency-key")
    if value is None and not required:
        return None
    if value is None or not _IDEMPOTENCY_KEY.fullmatch(value):
        raise BadRequest("Send an Idempotency-Key header of 1-64 visible ASCII characters",
                         errors=[{"field": "header.Idempotency-Key", "type": "missing_or_invalid",
                                  "message": "1-64 visible ASCII characters"}])
    return value


def senders_key(sender_id: str, key: str) -> str:
    """A key as its sender's: another sender's identical key names another request. The sender's id (a token's
    `sub`, any string) is hashed, so what is stored is short and plain ASCII whatever the id holds."""
    import hashlib  # loaded by the few keyed writes only

    return f"{hashlib.sha256(sender_id.encode('utf-8', 'surrogatepass')).hexdigest()[:32]} {key}"
