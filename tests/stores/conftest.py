"""The shop once more, with every PostgreSQL connection through a real PgBouncer in transaction pooling."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from shared.postgres import connect
from tests.stores.servers import pgbouncer
from tests.support import running_shop

POOL_SIZE = 4  # PgBouncer's server connections to the test database: far fewer than the functions' clients


@pytest.fixture(scope="session")
def bouncer(postgres_url, tmp_path_factory):
    backend = urlsplit(postgres_url)
    with pgbouncer(tmp_path_factory.mktemp("pgbouncer"), backend.hostname, backend.port or 5432, POOL_SIZE) as running:
        yield running


@pytest.fixture(scope="session")
def pooled_settings(shop_settings, postgres_url, bouncer):
    return {**shop_settings, "DATABASE_URL": bouncer.url(urlsplit(postgres_url).path.lstrip("/")),
            "DATABASE_POOLER": "transaction"}


@pytest.fixture(scope="session")
def pooled_shop(pooled_settings, tmp_path_factory):
    with running_shop(pooled_settings, tmp_path_factory.mktemp("pooled-logs")) as running:
        yield running


@pytest.fixture(scope="session")
def pooled_gateway(pooled_shop):
    with httpx.Client(base_url=pooled_shop.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def db(postgres_url):
    """A direct connection to the session's database, to look at what the functions stored."""
    connection = connect(postgres_url, timeout=5)
    yield connection
    connection.close()
