"""Migrations and indexes are a deploy step: a function only checks the schema, and names the step when behind."""

from __future__ import annotations

import uuid

import httpx
import pytest
from pymongo import MongoClient

from local.migrate import run_step
from local.processes import free_port
from local.stores import create_database, drop_database
from shared.postgres import connect
from tests.support import ADMIN, assert_problem, bearer, function_alone


@pytest.fixture
def fresh_stores(shop_settings):
    """The session's servers, with a PostgreSQL database and a MongoDB database nothing has migrated."""
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    database_url = shop_settings["DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"
    create_database(database_url)
    settings = {**shop_settings, "DATABASE_URL": database_url, "MONGODB_DATABASE": name}
    mongo = MongoClient(shop_settings["MONGODB_URL"])
    try:
        yield settings, mongo[name]
    finally:
        mongo.drop_database(name)
        mongo.close()
        drop_database(database_url, timeout=60)  # FORCE ends the stopped functions' sessions: slow when loaded


def tables(database_url: str) -> list[str]:
    connection = connect(database_url, timeout=5)
    try:
        return [row[0] for row in connection.run(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
    finally:
        connection.close()


def assert_names_the_migration_step(response: httpx.Response) -> None:
    body = assert_problem(response, 503)
    assert "make migrate" in body["detail"] and "shop-migrate Job" in body["detail"], body
    assert response.headers["retry-after"]


def test_functions_on_fresh_stores_answer_503_naming_the_step_and_create_nothing(fresh_stores):
    settings, mongo = fresh_stores
    with function_alone("orders-list-orders", settings) as orders, \
            function_alone("catalog-get-product", settings) as catalog:
        orders_answer = httpx.get(f"{orders.url}/orders/alice", headers=bearer("alice"), timeout=10)
        catalog_answer = httpx.get(f"{catalog.url}/products/{'a' * 24}", timeout=10)

        assert_names_the_migration_step(orders_answer)
        assert_names_the_migration_step(catalog_answer)
        assert tables(settings["DATABASE_URL"]) == []
        assert mongo.list_collection_names() == []

        run_step(settings)

        # The same processes serve once the step has run: no restart needed.
        assert httpx.get(f"{orders.url}/orders/alice", headers=bearer("alice"), timeout=10).status_code == 200
        assert httpx.get(f"{catalog.url}/products/{'a' * 24}", timeout=10).status_code == 404


def test_the_step_creates_tables_and_catalog_indexes_and_records_their_versions(fresh_stores):
    settings, mongo = fresh_stores

    run_step(settings)
    run_step(settings)  # idempotent

    assert {"schema_migrations", "orders", "notifications"} <= set(tables(settings["DATABASE_URL"]))
    assert {"sku_unique", "listing_by_created_at", "category_by_price"} <= set(mongo["products"].index_information())
    assert "state_expiry" in mongo["stock_reservations"].index_information()
    assert mongo["schema_versions"].find_one({"_id": "catalog"})["version"] >= 1


def test_the_step_without_a_mongodb_says_where_it_looked_and_fails(fresh_stores):
    settings, _ = fresh_stores
    nowhere = f"mongodb://127.0.0.1:{free_port()}"

    with pytest.raises(RuntimeError) as failed:
        run_step({**settings, "MONGODB_URL": nowhere})

    assert f"MongoDB does not answer at {nowhere}" in str(failed.value)
    assert "Traceback" not in str(failed.value)


def test_a_function_newer_than_its_stores_answers_503_until_migrated(fresh_stores):
    settings, mongo = fresh_stores
    run_step(settings)
    connection = connect(settings["DATABASE_URL"], timeout=5)
    try:
        latest = connection.run("SELECT max(version) FROM schema_migrations")[0][0]
        connection.run("DELETE FROM schema_migrations WHERE version = :version", version=latest)
    finally:
        connection.close()
    mongo["schema_versions"].update_one({"_id": "catalog"}, {"$set": {"version": 0}})

    with function_alone("orders-list-orders", settings) as orders, \
            function_alone("catalog-create-product", settings) as catalog:
        stale_orders = httpx.get(f"{orders.url}/orders/alice", headers=bearer("alice"), timeout=10)
        stale_catalog = httpx.post(f"{catalog.url}/products", headers=ADMIN, timeout=10, json={
            "sku": f"SCHEMA-{uuid.uuid4().hex[:6]}", "name": "Mug", "brand": "Test", "stock_quantity": 1,
            "price": {"amount": "1.00", "currency": "EUR"}})

        assert_names_the_migration_step(stale_orders)
        assert latest in stale_orders.json()["detail"]
        assert_names_the_migration_step(stale_catalog)
        assert mongo["products"].count_documents({}) == 0
