"""`shop` and `gateway` as the pooled ones (tests/stores/conftest.py): a test module importing both runs every test
it collects with each PostgreSQL connection through the session's PgBouncer."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def shop(pooled_shop):
    return pooled_shop


@pytest.fixture(scope="module")
def gateway(pooled_gateway):
    return pooled_gateway
