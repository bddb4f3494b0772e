"""Tokens already verified, remembered until they expire: a caller sends the same token for minutes, and checking
its signature again on every request is most of what authenticating it costs.

Only a token that passed every check is remembered, under the exact token string and a scope that must match too
(the audience it was checked for, or the key object that checked it: a key rotated out of the settings or the
provider's set is a new object, or none, so what it verified is not found again). An entry is dropped once the
token's `exp` is reached, so an expired token is refused whether or not it was remembered.
"""

from __future__ import annotations

import time
from typing import Generic, Hashable, TypeVar

Who = TypeVar("Who")
LIMIT = 1024  # entries; when full the whole memory is dropped (each holder then re-verifies once)


class VerifiedTokens(Generic[Who]):
    """Verified tokens of one kind, by (token, scope): whom they name, until they expire."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._entries: dict[tuple[str, Hashable], tuple[Who, float]] = {}

    def get(self, token: str, scope: Hashable) -> Who | None:
        """Whom `token` names, if it was verified for `scope` and has not expired since."""
        found = self._entries.get((token, scope))
        if found is None:
            return None
        if found[1] <= time.time():
            del self._entries[(token, scope)]
            return None
        return found[0]

    def remember(self, token: str, scope: Hashable, who: Who, expires: float) -> None:
        """Keep what a successful verification of `token` for `scope` found, until `expires` (epoch seconds)."""
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[(token, scope)] = (who, float(expires))

    def __len__(self) -> int:
        return len(self._entries)
