"""Prometheus metrics of one function process, served on METRICS_PORT, never on the public route."""

from __future__ import annotations

import os
import threading

from prometheus_client import Counter, Histogram, start_http_server

from shared.logs import logger

REQUESTS = Counter("shop_http_requests", "HTTP requests handled, by function, method and status",
                   ["function", "method", "status"])
LATENCY = Histogram("shop_http_request_duration_seconds", "Time spent handling a request, by function",
                    ["function"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

_log = logger("metrics")
_checked_pid: int | None = None  # the process that has looked (and started it if asked): a forked child looks again
_lock = threading.Lock()


def serve_metrics() -> None:
    """Start this process's metrics endpoint once; a no-op without METRICS_PORT."""
    global _checked_pid
    if _checked_pid == os.getpid():  # every request asks: answered without reading the environment again
        return
    with _lock:
        if _checked_pid == os.getpid():
            return
        _checked_pid = os.getpid()
        port = os.environ.get("METRICS_PORT")
        if not port:
            return
        try:
            start_http_server(int(port), addr=os.environ.get("METRICS_ADDR", "0.0.0.0"))
        except OSError as error:
            _log.warning("metrics endpoint not started", extra={"port": port, "error": str(error)})


# functions-framework's gunicorn master imports the function, then forks the worker that serves and counts:
# the endpoint must live in the worker, so it starts right after the fork (or on the first request without one).
os.register_at_fork(after_in_child=serve_metrics)
