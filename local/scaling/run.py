"""The gateway process in SCALING=knative mode: its settings, its replicas' log and pid files, and its sockets.

    SCALING=knative GATEWAY_SERVICES='{"catalog-get-product": 8103, ...}' python -m local.gateway

The public port (PORT) and each function's own port (GATEWAY_SERVICES) are served by one uvicorn server; replicas
log to LOCAL_REPLICA_LOGS/<function>.log (else the gateway's output) and are recorded in LOCAL_REPLICA_PIDS, so
that `make down` finds what a dead gateway left behind.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from pydantic import ValidationError

from local.pids import PidFile
from local.scaling.scaler import Scaler
from local.scaling.settings import ScalingSettings
from shared.routes import ROUTES_BY_NAME


def knative_gateway(create_gateway, upstreams: dict[str, str], state_file: Path | None, host: str, port: int) -> None:
    import uvicorn

    try:
        settings = ScalingSettings.from_environment()
    except ValidationError as error:
        sys.exit(f"the SCALING_* settings are not valid:\n{error}")
    services = json.loads(os.environ.get("GATEWAY_SERVICES") or "{}")
    routes = [ROUTES_BY_NAME[name] for name in services]
    log_dir = Path(os.environ["LOCAL_REPLICA_LOGS"]) if os.environ.get("LOCAL_REPLICA_LOGS") else None
    pid_file = PidFile(Path(os.environ["LOCAL_REPLICA_PIDS"])) if os.environ.get("LOCAL_REPLICA_PIDS") else None
    scaler = Scaler(routes, settings, log_dir, pid_file)
    app = create_gateway(upstreams, state_file, scaler, {int(number): name for name, number in services.items()})
    sockets = [_listening(host, number) for number in [port, *services.values()]]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    try:
        server.run(sockets=sockets)
    finally:
        if pid_file is not None:
            pid_file.remove()


def _listening(host: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(2048)
    listener.set_inheritable(False)
    return listener
