"""PgBouncer in front of PostgreSQL, in transaction pooling, with its connection budget computed from the route table.

Each Knative replica of a PostgreSQL function opens up to DATABASE_MAX_CONNECTIONS connections, and Knative may
run max-scale replicas: directly, that passes PostgreSQL's max_connections long before the shop is busy. Through
PgBouncer the functions' connections are client connections, and only `default_pool_size` server connections
(plus the reserve) reach PostgreSQL. The budget, checked here so no manifest can break it:

    Σ over functions of max_scale × DATABASE_MAX_CONNECTIONS + OPERATOR_CONNECTIONS <= max_client_conn
    REPLICAS × (default_pool_size + reserve_pool_size) × databases <= max_connections − reserved − DIRECT_CONNECTIONS
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import TypeAdapter

from local.environment import function_secrets
from shared.routes import ROUTES, Route
from shared.settings import PostgresSettings

NAME = "pgbouncer"
PORT = 6432
# PLACEHOLDER tag: any image whose `pgbouncer` takes an ini path; pin it by digest as the functions' image is.
IMAGE = "edoburu/pgbouncer:v1.23.1-p2"
REPLICAS = 1  # each replica has its own server pools: the second budget line counts them all
DATABASE = "shop"
POSTGRES_HOST = "postgres"  # knative/stores/postgres.yaml's Service, in the same namespace
POSTGRES_MAX_CONNECTIONS = 100  # PostgreSQL's default, which knative/stores/postgres.yaml keeps
POSTGRES_RESERVED_CONNECTIONS = 3  # superuser_reserved_connections' default
DIRECT_CONNECTIONS = 10  # left for what connects to PostgreSQL itself: psql, backups, monitoring
OPERATOR_CONNECTIONS = 10  # client connections beyond the functions': the migration Job, an operator's psql
DEFAULT_POOL_SIZE = 20
RESERVE_POOL_SIZE = 5
CONFIG_PATH = Path(__file__).resolve().parents[2] / "knative" / "config.yaml"  # shop-config, hand-written
USERLIST_SECRET, USERLIST_KEY = "shop-data-secrets", "PGBOUNCER_USERLIST"  # `"shop" "<POSTGRES_PASSWORD>"`


def pool_size_per_replica() -> int:
    """DATABASE_MAX_CONNECTIONS as every function runs it (no Service overrides the default)."""
    return PostgresSettings.model_fields["database_max_connections"].default


def client_connections(routes: tuple[Route, ...] = ROUTES) -> dict[str, int]:
    """Per function that uses PostgreSQL: the connections its replicas may open, max_scale × pool size."""
    return {route.name: route.scaling.max_scale * pool_size_per_replica()
            for route in routes if "DATABASE_URL" in function_secrets(route)}


def max_client_conn(routes: tuple[Route, ...] = ROUTES) -> int:
    return sum(client_connections(routes).values()) + OPERATOR_CONNECTIONS


def server_connections() -> int:
    """What PgBouncer may open to PostgreSQL at most (max_db_connections enforces it per replica)."""
    return REPLICAS * (DEFAULT_POOL_SIZE + RESERVE_POOL_SIZE)


def settings(**overrides: str | int) -> dict[str, str | int]:
    """The [pgbouncer] section; tests override where it listens and how it authenticates."""
    budget = POSTGRES_MAX_CONNECTIONS - POSTGRES_RESERVED_CONNECTIONS - DIRECT_CONNECTIONS
    if server_connections() > budget:
        raise ValueError(f"PgBouncer may open {server_connections()} server connections; PostgreSQL has {budget}")
    return {
        "listen_addr": "0.0.0.0",
        "listen_port": PORT,
        "unix_socket_dir": "",
        "auth_type": "scram-sha-256",
        "auth_file": "/etc/pgbouncer/secret/userlist.txt",
        # A server connection serves one client transaction at a time, then the next client's: no session state
        # survives between transactions (the functions run with DATABASE_POOLER=transaction).
        "pool_mode": "transaction",
        "max_client_conn": max_client_conn(),
        "default_pool_size": DEFAULT_POOL_SIZE,
        "reserve_pool_size": RESERVE_POOL_SIZE,
        "reserve_pool_timeout": 1,
        "max_db_connections": DEFAULT_POOL_SIZE + RESERVE_POOL_SIZE,
        # Shorter than a function's wait for a connection would be pointless; a client waits this long at most.
        "query_wait_timeout": 5,
        "server_idle_timeout": 300,
        "ignore_startup_parameters": "extra_float_digits",
        "log_connections": 0,
        "log_disconnections": 0,
        **overrides,
    }


def database_timeout_seconds() -> float:
    """DATABASE_TIMEOUT_SECONDS as the functions run it: shop-config's (knative/config.yaml, a checkout's file:
    the image has none), else the default; validated as the functions validate it."""
    config = yaml.safe_load(CONFIG_PATH.read_text())["data"]
    field = PostgresSettings.model_fields["database_timeout_seconds"]
    return TypeAdapter(Annotated[(float, *field.metadata)]).validate_python(
        config.get("DATABASE_TIMEOUT_SECONDS", field.default))


def connect_query(timeout_seconds: float) -> str:
    """Each server connection cancels a statement after the functions' DATABASE_TIMEOUT_SECONDS, when they give up
    on it (else an abandoned statement waits on behind a lock). Set here because in pooler mode a function can send
    it neither as a startup parameter (PgBouncer refuses it) nor with SET (the next transaction is another client's)."""
    return f"connect_query='SET statement_timeout = {round(timeout_seconds * 1000)}'"


def ini(databases: dict[str, str] | None = None, timeout_seconds: float | None = None, **overrides: str | int) -> str:
    """pgbouncer.ini; `timeout_seconds`: the functions' DATABASE_TIMEOUT_SECONDS (None: as deployed)."""
    databases = databases or {DATABASE: f"host={POSTGRES_HOST} port=5432 dbname={DATABASE}"}
    query = connect_query(database_timeout_seconds() if timeout_seconds is None else timeout_seconds)
    lines = ["[databases]", *(f"{name} = {target} {query}" for name, target in databases.items()), "",
             "[pgbouncer]"]
    lines += [f"{key} = {value}".rstrip() for key, value in settings(**overrides).items()]
    return "\n".join(lines) + "\n"


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "shop"}


def manifests() -> list[dict]:
    """ConfigMap (pgbouncer.ini), Deployment and Service, for knative/stores (namespace set by its kustomization)."""
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{NAME}-config", "labels": _labels()},
              "data": {"pgbouncer.ini": ini()}}
    container = {
        "name": NAME,
        "image": IMAGE,
        "command": ["pgbouncer", "/etc/pgbouncer/config/pgbouncer.ini"],
        "ports": [{"name": "postgres", "containerPort": PORT}],
        "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 70, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/pgbouncer/config", "readOnly": True},
                         {"name": "secret", "mountPath": "/etc/pgbouncer/secret", "readOnly": True}],
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME, "labels": _labels()},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                 "template": {"metadata": {"labels": _labels()}, "spec": {
                     "automountServiceAccountToken": False,
                     "containers": [container],
                     "volumes": [{"name": "config", "configMap": {"name": f"{NAME}-config"}},
                                 {"name": "secret", "secret": {"secretName": USERLIST_SECRET, "items": [
                                     {"key": USERLIST_KEY, "path": "userlist.txt"}]}}]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "labels": _labels()},
               "spec": {"selector": {"app.kubernetes.io/name": NAME},
                        "ports": [{"name": "postgres", "port": PORT, "targetPort": PORT}]}}
    return [config, deployment, service]


class _BlockStrings(yaml.SafeDumper):
    """Multi-line strings (pgbouncer.ini) as literal blocks, readable as the file they become."""


_BlockStrings.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def render(header: str) -> str:
    return header + "---\n".join(yaml.dump(document, Dumper=_BlockStrings, sort_keys=False, width=120)
                                 for document in manifests())
