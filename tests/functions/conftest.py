"""Fixtures the function tests share."""

from __future__ import annotations

import asyncio

import pytest

from local.migrate import index_catalog
from shared.postgres import connect
from shared.settings import settings


@pytest.fixture(scope="module")
def db(postgres_url):
    """A connection to the session's PostgreSQL database, to look at (or stage) what the functions stored."""
    connection = connect(postgres_url, timeout=5)
    yield connection
    connection.close()


@pytest.fixture
def in_process_store(shop_settings, monkeypatch):
    """Point the store modules, run inside the test process, at the session's database (an instance of their
    own: for what only the same process shows, or to stage many products fast); `configure(**env)` adds
    settings."""
    def configure(**extra: str) -> None:
        for name in ("MONGODB_URL", "MONGODB_DATABASE"):
            monkeypatch.setenv(name, shop_settings[name])
        for name, value in extra.items():
            monkeypatch.setenv(name, value)
        settings.cache_clear()
        if "MONGODB_DATABASE" in extra:  # a database of its own gets the deploy step's indexes and version
            asyncio.run(index_catalog())

    yield configure
    settings.cache_clear()
