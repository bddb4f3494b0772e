"""local/docker-compose.yml: the same shop as `make up`, every function a container of the one image."""

from __future__ import annotations

import json

from local import environment
from local.broker import BROKER_PATH
from local.config import LOCAL_DEFAULTS
from local.deploy.knative import METRICS_PORT, SERVING_PORT, domain
from local.environment import Variable
from local.service_keys import EVENTING, LOCAL_EVENTING_ISSUER, key_variable
from shared.routes import ROUTES, Route, public_routes
from shared.routes import route as route_named
from shared.service_identity import caller_key_variable

IMAGE = "shop-functions:local"
STORES = {"catalog": ["mongo"], "cart": ["redis"], "orders": ["postgres"], "notify": ["postgres"]}
SECRETS = {  # a function gets only those its code reads (local.environment); any other: from the shell or .env
    "MONGODB_URL": "mongodb://mongo:27017",
    "REDIS_URL": "redis://redis:6379/0",
    "DATABASE_URL": "postgresql://shop:shop@postgres:5432/shop",
    # Literal (no ${...:-default}): the JSON's braces would end the interpolation. Local values, not secrets.
    **{name: LOCAL_DEFAULTS[name] for name in ("USER_TOKEN_HS256_KEYS", "CARD_FINGERPRINT_KEY")},
}
CONFIGURATION = {"LOG_LEVEL": "INFO", **{name: LOCAL_DEFAULTS[name] for name in ("USER_TOKEN_ISSUER", "USER_TOKEN_AUDIENCE")}}
KEYS_HINT = "run `python -m local.service_keys compose-env > local/.env` first"


def _key(name: str) -> str:
    """A private service key, from local/.env (never committed)."""
    return f"${{{key_variable(name)}:?{KEYS_HINT}}}"


def _public_key(name: str) -> str:
    return f"${{{key_variable(name, public=True)}:?{KEYS_HINT}}}"


def function_env(route: Route) -> dict[str, str]:
    """The function's variables (local.environment decides which, for every platform), with compose's values."""
    def value(variable: Variable) -> str:
        match variable.kind:
            case environment.SOURCE | environment.LITERAL:
                return variable.value
            case environment.PEER:  # as in the cluster: only the addresses of the functions it calls
                return f"http://{variable.value}:{SERVING_PORT}"
            case environment.SINK:
                return f"http://gateway:{SERVING_PORT}{BROKER_PATH}"
            case environment.SECRET:
                return SECRETS.get(variable.name, f"${{{variable.name}:?set {variable.name}}}")
            case environment.OWN_KEY:
                return _key(variable.value)
            case environment.CALLER_KEY:
                return _public_key(variable.value)
            case environment.SENDER_ISSUER:
                return LOCAL_EVENTING_ISSUER
            case environment.SENDER_JWKS:
                return f"${{SHOP_EVENTING_JWKS:?{KEYS_HINT}}}"
        raise ValueError(f"no value for {variable}")

    return {variable.name: value(variable) for variable in environment.variables(route)}


def _broker_env() -> dict[str, str]:
    subscriber = route_named(environment.PUBLISHED_TO)
    return {"LOCAL_BROKER_SUBSCRIBER": f"http://{subscriber.name}:{SERVING_PORT}",
            "LOCAL_BROKER_SUBJECT": environment.event_senders(subscriber)[0],
            "LOCAL_BROKER_AUDIENCE": environment.event_audience(subscriber.name), "LOCAL_EVENTING_KEY": _key(EVENTING),
            **{caller_key_variable(route.name): _public_key(route.name) for route in ROUTES if route.publishes}}
PORT_CHECK = ["CMD", "python", "-c", f"import socket; socket.create_connection(('127.0.0.1', {SERVING_PORT}), 2)"]
HEALTH = {"interval": "5s", "timeout": "3s", "retries": 20, "start_period": "5s"}


def _build() -> dict:
    return {"context": "..", "dockerfile": "Dockerfile"}


def _migrated() -> dict:
    return {"migrate": {"condition": "service_completed_successfully"}}


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
                **function_env(route), "K_SERVICE": route.name,
                "WORKERS": "1", "THREADS": str(route.scaling.container_concurrency),
                "METRICS_PORT": str(METRICS_PORT), **CONFIGURATION,
            },
            "depends_on": {**_healthy(*STORES[domain(route)]), **_migrated()},
            "healthcheck": {"test": PORT_CHECK, **HEALTH},
            "read_only": True,
            "tmpfs": ["/tmp"],
        }
    upstreams = {route.name: f"http://{route.name}:{SERVING_PORT}" for route in public_routes()}
    services["gateway"] = {  # also the broker (local.broker), as in `make up`
        "image": IMAGE, "build": _build(), "command": ["python", "-m", "local.gateway"],
        "environment": {"HOST": "0.0.0.0", "PORT": str(SERVING_PORT), "GATEWAY_UPSTREAMS": json.dumps(upstreams),
                        **_broker_env()},
        # This machine only: the compose file's token keys are fixed local values that anyone can read.
        "ports": ["127.0.0.1:8080:8080"],
        "depends_on": _healthy(*upstreams),
        "healthcheck": {"test": PORT_CHECK, **HEALTH},
    }
    for ticked in ("orders-outbox-relay", "catalog-expire-reservations"):  # the PingSources, every 5 s here
        services[f"{ticked}-ticker"] = {
            "image": IMAGE, "build": _build(),
            "command": ["python", "-m", "local.ping", "--url", f"http://{ticked}:{SERVING_PORT}", "--function", ticked,
                        "--every", "5"],
            "environment": {"LOCAL_EVENTING_KEY": _key(EVENTING)},
            "depends_on": _healthy(ticked),
        }
    services["migrate"] = {  # the deploy step the shop-migrate Job is in a cluster: functions never change a schema
        "image": IMAGE, "build": _build(), "command": ["python", "-m", "local.migrate"],
        "environment": {name: SECRETS[name] for name in ("MONGODB_URL", "DATABASE_URL")},
        "depends_on": _healthy("mongo", "postgres"), "restart": "no",
    }
    services["seed"] = {
        "image": IMAGE, "build": _build(), "command": ["python", "-m", "local.seed", "--if-empty"],
        "environment": {"MONGODB_URL": SECRETS["MONGODB_URL"]},
        "depends_on": {**_healthy("mongo"), **_migrated()}, "restart": "no",
    }
    return {"name": "shop", "services": services, "volumes": {"mongo-data": {}, "postgres-data": {}}}
