"""HTTP caching for GET answers: entity tags, `If-None-Match` and the `Cache-Control` an edge or browser obeys.

An answer that is the same for every caller may be kept by a shared cache (CDN, edge) for `max-age` seconds and
served stale for as long again while it revalidates; an answer given to a caller who sent a token is private
(it may differ per caller: an admin sees inactive products) and is revalidated on every use.
"""

from __future__ import annotations

import hashlib
import math
import re

from starlette.responses import Response

_ENTITY_TAGS = re.compile(r'\s*(?:(W/)?"([\x21\x23-\x7e]*)"\s*(?:,\s*|$))+$')
_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e]*)"')


def entity_tags(header: str) -> list[tuple[bool, str]]:
    """(weak, opaque tag) for each entity tag of an If-Match / If-None-Match list; none when malformed."""
    if not _ENTITY_TAGS.match(header):
        return []
    return [(bool(weak), tag) for weak, tag in _ENTITY_TAG.findall(header)]


def body_etag(body: bytes) -> str:
    """A strong entity tag for a body that has no version of its own (a page of results)."""
    return f'"b{hashlib.blake2b(body, digest_size=12).hexdigest()}"'


def names_etag(header: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names `etag` (weak comparison) or is `*`: a GET answers 304 then."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/").strip('"')
    return any(tag == wanted for _, tag in entity_tags(header))


def cache_headers(etag: str, *, max_age: float, private: bool, age: float | None = None) -> dict[str, str]:
    """ETag, Cache-Control, Vary and (for an answer kept in memory) Age.

    `Age` counts from when the answer was read from the store, rounded up, so an edge keeps it fresh only for
    what is left of `max_age`: the oldest answer anyone serves is `max_age` + `stale-while-revalidate` old."""
    seconds = math.ceil(max_age)
    if private:
        control = "private, no-cache"
    elif seconds == 0:
        control = "no-cache"
    else:
        control = f"public, max-age={seconds}, stale-while-revalidate={seconds}"
    headers = {"ETag": etag, "Cache-Control": control, "Vary": "Authorization"}
    if age is not None:
        headers["Age"] = str(math.ceil(age))
    return headers


def conditional_json(if_none_match: str | None, body: bytes, headers: dict[str, str]) -> Response:
    """The JSON body with its cache headers, or 304 without it when `If-None-Match` names its ETag (the
    validators and cache headers only, RFC 9110 §15.4.5)."""
    if names_etag(if_none_match, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
