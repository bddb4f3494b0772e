"""The image's start command: functions-framework's own ASGI app for one function, served by uvicorn in one process.

    python -m shared.serve        # reads FUNCTION_TARGET, FUNCTION_SOURCE, FUNCTION_SIGNATURE_TYPE, HOST, PORT

Why not the `functions-framework` command: for an `@aio` function it builds a Flask app it never uses, then runs
gunicorn's master, which forks one uvicorn worker (two processes, two interpreters' memory, a fork and gunicorn's
imports on every cold start) and leaves uvicorn's per-request access log on. Knative already restarts a container
whose process exits, so the master adds nothing here. The app itself is functions-framework's
(`create_asgi_app`): the same routes, error handling and execution ids as under its command.

uvloop and httptools are named, not left to "auto", so a missing one fails at start instead of silently costing
about half again the CPU per request. ACCESS_LOG=1 turns uvicorn's access log back on; the shop's own one JSON line
per request is shared/http.py's.
"""

from __future__ import annotations

import os
import socket
import time

import uvicorn
from functions_framework.aio import create_asgi_app

from shared import metrics


def main() -> None:
    app = create_asgi_app(os.environ["FUNCTION_TARGET"], os.environ.get("FUNCTION_SOURCE"),
                          os.environ.get("FUNCTION_SIGNATURE_TYPE", "http"))
    metrics.serve_metrics()
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off",
                            log_level=os.environ.get("UVICORN_LOG_LEVEL", "warning"),
                            access_log=os.environ.get("ACCESS_LOG", "0") == "1", timeout_graceful_shutdown=10)
    uvicorn.Server(config).run(sockets=[listening(os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8080")))])


def listening(host: str, port: int, attempts: int = 5) -> socket.socket:
    """A socket bound to host:port, trying again for a few seconds while the port is taken, as gunicorn does
    (a process that held it may still be closing)."""
    for attempt in range(attempts):
        server = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind((host, port))
        except OSError:
            server.close()
            if attempt == attempts - 1:
                raise
            time.sleep(1)
            continue
        server.listen(2048)
        server.set_inheritable(True)
        return server
    raise AssertionError("unreachable")


if __name__ == "__main__":
    main()
