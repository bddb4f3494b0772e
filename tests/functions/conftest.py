"""Fixtures the function tests share."""

from __future__ import annotations

import pytest

from shared.postgres import connect


@pytest.fixture(scope="module")
def db(postgres_url):
    """A connection to the session's PostgreSQL database, to look at (or stage) what the functions stored."""
    connection = connect(postgres_url, timeout=5)
    yield connection
    connection.close()
