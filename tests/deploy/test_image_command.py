"""The image's start command, run for real: the Dockerfile's ENV and CMD with a Knative Service's env."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from local.processes import free_port, stop, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def dockerfile() -> tuple[dict[str, str], list[str], str]:
    """(ENV, CMD, WORKDIR) of the Dockerfile, with its line continuations joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    env, command, workdir = {}, [], "/"
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(rest))
        elif instruction == "CMD":
            command = json.loads(rest)
        elif instruction == "WORKDIR":
            workdir = rest.strip()
    return env, command, workdir


def test_the_image_command_serves_a_function(shop_settings):
    image_env, command, workdir = dockerfile()
    service = yaml.safe_load((ROOT / "knative/services/catalog-list-products.yaml").read_text())
    function_env = {item["name"]: item["value"]
                    for item in service["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in item}
    port = free_port()
    # The image's /app is this checkout; its installed scripts are this environment's.
    env = {key: value.replace(workdir, str(ROOT)) for key, value in {**image_env, **function_env}.items()}
    env |= {**shop_settings, "PORT": str(port), "METRICS_PORT": str(free_port()),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_for_port(port, process)
        response = httpx.get(f"http://127.0.0.1:{port}/products", params={"limit": 1}, timeout=10)
    finally:
        stop([process])

    assert command == ["functions-framework"]
    assert response.status_code == 200
    assert response.json()["limit"] == 1


def test_the_image_compiles_its_sources_before_dropping_to_a_user_that_cannot_write_them():
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    instructions = [line.strip().partition(" ") for line in text.splitlines() if line.strip()[:1].isupper()]
    _, _, workdir = dockerfile()
    compiled = [i for i, (name, _, rest) in enumerate(instructions)
                if name == "RUN" and f"python -m compileall -q {workdir}" in rest]
    user = [i for i, (name, _, _) in enumerate(instructions) if name == "USER"]
    copies = [i for i, (name, _, _) in enumerate(instructions) if name == "COPY"]
    assert compiled and user and compiled[0] < user[0] and compiled[0] > max(copies)


def test_the_image_and_the_local_runner_start_every_function_in_asgi_mode_with_no_unused_flask_app():
    from local.processes import function_env
    from shared.routes import ROUTES

    image_env, _, _ = dockerfile()
    assert image_env["FUNCTION_USE_ASGI"] == "true"
    assert {function_env(route, 8080, None, {})["FUNCTION_USE_ASGI"] for route in ROUTES} == {"true"}
