"""The catalog's store module driven from the test process itself (an instance of its own), on the session's
MongoDB database: for what only the same process can show, or to stage many products fast."""

from __future__ import annotations

import pytest

from shared.settings import settings


@pytest.fixture
def in_process_store(shop_settings, monkeypatch):
    """Settings for functions.catalog.store in this process; pass extra variables with `configure(**env)`."""
    def configure(**extra: str) -> None:
        for name in ("MONGODB_URL", "MONGODB_DATABASE"):
            monkeypatch.setenv(name, shop_settings[name])
        for name, value in extra.items():
            monkeypatch.setenv(name, value)
        settings.cache_clear()

    yield configure
    settings.cache_clear()
