"""local/docker-compose.yml: the same shop as `make up`, every function a container of the one image."""

from __future__ import annotations

import json

from local.config import LOCAL_DEFAULTS
from local.deploy.knative import METRICS_PORT, SERVING_PORT, domain
from shared.peers import url_variable
from shared.routes import ROUTES, public_routes

IMAGE = "shop-functions:local"
STORES = {"catalog": ["mongo"], "cart": ["redis"], "orders": ["postgres"], "notify": ["postgres"]}
SETTINGS = {
    "MONGODB_URL": "mongodb://mongo:27017",
    "REDIS_URL": "redis://redis:6379/0",
    "DATABASE_URL": "postgresql://shop:shop@postgres:5432/shop",
    # Literal (no ${...:-default}): the JSON's braces would end the interpolation. Local values, not secrets.
    **{name: LOCAL_DEFAULTS[name] for name in ("USER_TOKEN_ISSUER", "USER_TOKEN_AUDIENCE", "USER_TOKEN_HS256_KEYS",
                                               "CARD_FINGERPRINT_KEY")},
    "LOG_LEVEL": "INFO",
}
PORT_CHECK = ["CMD", "python", "-c", f"import socket; socket.create_connection(('127.0.0.1', {SERVING_PORT}), 2)"]
HEALTH = {"interval": "5s", "timeout": "3s", "retries": 20, "start_period": "5s"}


def _build() -> dict:
    return {"context": "..", "dockerfile": "Dockerfile"}


def _healthy(*names: str) -> dict:
    return {name: {"condition": "service_healthy"} for name in names}


def compose() -> dict:
    services: dict[str, dict] = {
        "mongo": {"image": "mongo:7", "volumes": ["mongo-data:/data/db"],
                  "healthcheck": {"test": ["CMD", "mongosh", "--quiet", "--eval", "db.adminCommand('ping')"], **HEALTH}},
        "redis": {"image": "redis:7-alpine", "command": ["redis-server", "--save", "", "--appendonly", "no"],
                  "healthcheck": {"test": ["CMD", "redis-cli", "ping"], **HEALTH}},
        "postgres": {"image": "postgres:16-alpine", "volumes": ["postgres-data:/var/lib/postgresql/data"],
                     "environment": {"POSTGRES_USER": "shop", "POSTGRES_PASSWORD": "shop", "POSTGRES_DB": "shop"},
                     "healthcheck": {"test": ["CMD", "pg_isready", "-U", "shop"], **HEALTH}},
    }
    for route in ROUTES:
        services[route.name] = {
            "image": IMAGE,
            "build": _build(),
            "environment": {
                "FUNCTION_SOURCE": route.source, "FUNCTION_TARGET": route.target,
                "FUNCTION_SIGNATURE_TYPE": route.signature, "K_SERVICE": route.name,
                "WORKERS": "1", "THREADS": str(route.scaling.container_concurrency),
                "METRICS_PORT": str(METRICS_PORT), **SETTINGS,
                # As in the cluster: a function knows the address of the functions it calls, and of no other.
                **{url_variable(peer): f"http://{peer}:{SERVING_PORT}" for peer in route.calls},
                # As the broker's Trigger would deliver: order events go straight to the notify function.
                "K_SINK": f"http://notify-order-created:{SERVING_PORT}",
            },
            "depends_on": _healthy(*STORES[domain(route)]),
            "healthcheck": {"test": PORT_CHECK, **HEALTH},
            "read_only": True,
            "tmpfs": ["/tmp"],
        }
    upstreams = {route.name: f"http://{route.name}:{SERVING_PORT}" for route in public_routes()}
    services["gateway"] = {
        "image": IMAGE, "build": _build(), "command": ["python", "-m", "local.gateway"],
        "environment": {"HOST": "0.0.0.0", "PORT": str(SERVING_PORT), "GATEWAY_UPSTREAMS": json.dumps(upstreams)},
        "ports": ["8080:8080"],
        "depends_on": _healthy(*upstreams),
        "healthcheck": {"test": PORT_CHECK, **HEALTH},
    }
    for ticked in ("orders-outbox-relay", "catalog-expire-reservations"):  # the PingSources, every 5 s here
        services[f"{ticked}-ticker"] = {
            "image": IMAGE, "build": _build(),
            "command": ["python", "-m", "local.ping", "--url", f"http://{ticked}:{SERVING_PORT}", "--every", "5"],
            "depends_on": _healthy(ticked),
        }
    services["seed"] = {
        "image": IMAGE, "build": _build(), "command": ["python", "-m", "local.seed", "--if-empty"],
        "environment": {"MONGODB_URL": SETTINGS["MONGODB_URL"]},
        "depends_on": _healthy("mongo"), "restart": "no",
    }
    return {"name": "shop", "services": services, "volumes": {"mongo-data": {}, "postgres-data": {}}}
