"""httpx's AsyncClient for calls between functions, without a cookie jar.

Functions answer each other with JSON, never with a session. httpx's client parses every response for Set-Cookie
through http.cookiejar (~19 µs of CPU a call, measured) and would send what it kept on every later call of the
process, whichever user that call is for. Imported only where a function calls another (shared.peers).
"""

from __future__ import annotations

import httpx


class _NoCookies(httpx.Cookies):
    """Always empty: shared by every peer client of the process, so nothing may ever be put in it."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Keeps nothing a peer sets."""

    def set(self, *args, **kwargs) -> None:
        raise TypeError("calls between functions carry no cookies")

    def __setitem__(self, name, value) -> None:
        raise TypeError("calls between functions carry no cookies")

    def update(self, *args, **kwargs) -> None:
        raise TypeError("calls between functions carry no cookies")


_NO_COOKIES = _NoCookies()  # always empty: nothing is ever added to it


class PeerClient(httpx.AsyncClient):
    """An AsyncClient that neither keeps nor sends cookies."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies) -> None:
        raise TypeError("calls between functions carry no cookies")
