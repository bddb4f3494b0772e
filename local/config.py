"""The one place that holds local defaults: the runner, the tests, `make token` and the load test read them."""

from __future__ import annotations

import os

LOCAL_DEFAULTS = {
    "MONGODB_URL": "mongodb://127.0.0.1:27017",
    "MONGODB_DATABASE": "shop",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "REDIS_KEY_PREFIX": "shop:",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/shop",
    "SHOP_JWT_SECRET": "local-development-secret-not-for-production",
    "LOG_LEVEL": "INFO",
}
GATEWAY_PORT = int(os.environ.get("GATEWAY_PORT", "8080"))
FUNCTION_BASE_PORT = int(os.environ.get("FUNCTION_BASE_PORT", "8101"))
METRICS_BASE_PORT = int(os.environ.get("METRICS_BASE_PORT", "9101"))
# Local processes serve one request stream each, like one Knative replica: a single async worker.
WORKERS = 1
THREADS = 8  # only used by sync (gthread) functions; async ones run on the event loop


def local_setting(name: str) -> str:
    """The environment's value of a setting, else its local default."""
    return os.environ.get(name) or LOCAL_DEFAULTS[name]
