"""The generated PgBouncer keeps the connection budget the route table implies, counted here independently."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml

from shared.routes import ROUTES
from shared.settings import PostgresSettings

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_DOMAINS = {"orders", "notify"}  # the functions given DATABASE_URL
POSTGRES_MAX_CONNECTIONS, SUPERUSER_RESERVED = 100, 3  # knative/stores/postgres.yaml keeps PostgreSQL's defaults


def generated() -> tuple[dict, dict]:
    documents = list(yaml.safe_load_all((ROOT / "knative/stores/pgbouncer.yaml").read_text()))
    [config] = [d for d in documents if d["kind"] == "ConfigMap"]
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    parser = configparser.ConfigParser()
    parser.read_string(config["data"]["pgbouncer.ini"])
    return {key: value for key, value in parser["pgbouncer"].items()}, deployment


def test_every_replica_of_every_postgres_function_has_a_client_slot():
    settings, _ = generated()
    pool = PostgresSettings.model_fields["database_max_connections"].default
    functions = sum(route.scaling.max_scale * pool for route in ROUTES if route.source.split("/")[1] in POSTGRES_DOMAINS)

    assert functions > POSTGRES_MAX_CONNECTIONS  # why PgBouncer: directly, this would be refused
    assert int(settings["max_client_conn"]) >= functions


def test_pgbouncer_opens_fewer_server_connections_than_postgres_has():
    settings, deployment = generated()
    per_replica = int(settings["default_pool_size"]) + int(settings["reserve_pool_size"])

    assert int(settings["max_db_connections"]) == per_replica  # the cap holds per database, reserve included
    assert deployment["spec"]["replicas"] * per_replica < POSTGRES_MAX_CONNECTIONS - SUPERUSER_RESERVED


def test_the_functions_are_told_they_are_behind_a_transaction_pooler():
    settings, _ = generated()
    config = yaml.safe_load((ROOT / "knative/config.yaml").read_text())
    example = next(yaml.safe_load_all((ROOT / "knative/secrets.example.yaml").read_text()))

    assert settings["pool_mode"] == "transaction"
    assert config["data"]["DATABASE_POOLER"] == "transaction"
    assert f"@pgbouncer.shop-data.svc.cluster.local:{settings['listen_port']}/" in example["stringData"]["DATABASE_URL"]
    assert "pgbouncer.yaml" in yaml.safe_load((ROOT / "knative/stores/kustomization.yaml").read_text())["resources"]


def test_pgbouncer_cancels_statements_at_the_timeout_the_functions_give_up_at(monkeypatch, tmp_path):
    """connect_query's statement_timeout is shop-config's DATABASE_TIMEOUT_SECONDS (else the default), read
    independently here from the committed manifests; and it follows shop-config when that sets one."""
    from local.deploy import pgbouncer

    config = yaml.safe_load((ROOT / "knative/config.yaml").read_text())["data"]
    seconds = float(config.get("DATABASE_TIMEOUT_SECONDS",
                               PostgresSettings.model_fields["database_timeout_seconds"].default))
    parser = configparser.ConfigParser()
    manifests = yaml.safe_load_all((ROOT / "knative/stores/pgbouncer.yaml").read_text())
    [ini] = [document["data"]["pgbouncer.ini"] for document in manifests if document["kind"] == "ConfigMap"]
    parser.read_string(ini)
    assert all(f"connect_query='SET statement_timeout = {round(seconds * 1000)}'" in target
               for target in parser["databases"].values())

    overridden = tmp_path / "config.yaml"
    overridden.write_text(yaml.safe_dump({"data": {**config, "DATABASE_TIMEOUT_SECONDS": "0.8"}}))
    monkeypatch.setattr(pgbouncer, "CONFIG_PATH", overridden)
    assert "SET statement_timeout = 800'" in pgbouncer.ini()
