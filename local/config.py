"""The one place that holds local defaults: the runner, the tests, `make token` and the load test read them."""

from __future__ import annotations

import os
from pathlib import Path

GATEWAY_PORT = int(os.environ.get("GATEWAY_PORT", "8080"))
FUNCTION_BASE_PORT = int(os.environ.get("FUNCTION_BASE_PORT", "8101"))
METRICS_BASE_PORT = int(os.environ.get("METRICS_BASE_PORT", "9101"))
MONGO_PORT = int(os.environ.get("MONGO_PORT", "27017"))  # where `make up` finds or starts SecantusDB
LOCAL_DEFAULTS = {
    "MONGODB_URL": f"mongodb://127.0.0.1:{MONGO_PORT}",
    "MONGODB_DATABASE": "shop",
    # SecantusDB does not dedupe a retried write as MongoDB does: a write slower than the socket timeout would be
    # applied twice by pymongo's retry. A busy laptop gets 5 s; a deployment keeps the default 1.5 s.
    "MONGODB_TIMEOUT_MS": "5000",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "REDIS_KEY_PREFIX": "shop:",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/shop",
    # User tokens: `make token` signs with the last HS256 key listed; every listed kid is accepted.
    "USER_TOKEN_ISSUER": "shop-local",
    "USER_TOKEN_AUDIENCE": "shop-api",
    "USER_TOKEN_HS256_KEYS": '{"local-1": "local-development-secret-not-for-production"}',
    "CARD_FINGERPRINT_KEY": "local-card-fingerprint-key-not-for-production",
    "LOG_LEVEL": "INFO",
}
# `make up`'s own files: SecantusDB's data (mongo/), its log (logs/), the pid and state files (run/).
LOCAL_DIR = Path(os.environ.get("LOCAL_DIR") or Path(__file__).resolve().parent.parent / ".local")
# A comma-separated list of route names starts only those functions (empty: every one).
LOCAL_FUNCTIONS = [name.strip() for name in os.environ.get("LOCAL_FUNCTIONS", "").split(",") if name.strip()]
# "knative": the gateway scales each function from zero like Knative (local/scaling/); empty: one process each.
SCALING = os.environ.get("SCALING", "").strip()
# Local processes serve one request stream each, like one Knative replica: a single async worker.
WORKERS = 1
THREADS = 8  # only used by sync (gthread) functions; async ones run on the event loop


def local_setting(name: str) -> str:
    """The environment's value of a setting, else its local default."""
    return os.environ.get(name) or LOCAL_DEFAULTS[name]
