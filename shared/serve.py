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

import uvicorn
from functions_framework.aio import create_asgi_app

from shared import metrics


def main() -> None:
    app = create_asgi_app(os.environ["FUNCTION_TARGET"], os.environ.get("FUNCTION_SOURCE"),
                          os.environ.get("FUNCTION_SIGNATURE_TYPE", "http"))
    metrics.serve_metrics()
    uvicorn.run(app, host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "8080")),
                loop="uvloop", http="httptools", lifespan="off", log_level=os.environ.get("UVICORN_LOG_LEVEL", "warning"),
                access_log=os.environ.get("ACCESS_LOG", "0") == "1", timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
