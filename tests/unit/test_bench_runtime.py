"""make bench starts the functions from the image's environment: the runtime dependencies only, sources on
PYTHONPATH, as the Dockerfile installs and runs them."""

from pathlib import Path

from bench.runtime import runtime_dependencies
from local.processes import FUNCTION_BIN_DIR, ROOT, function_command, function_env
from shared.routes import route


def test_the_runtime_environment_holds_what_the_image_installs_and_no_dev_tool():
    names = {dependency.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
             for dependency in runtime_dependencies()}
    assert {"functions-framework", "pydantic", "pymongo", "redis", "pg8000"} <= names
    # The dev and bench extras stay out: FastAPI alone brings opentelemetry, which redis-py then imports.
    assert not names & {"fastapi", "secantusdb", "pytest", "moto", "locust", "py-spy"}
    assert "pip install ." in (ROOT / "Dockerfile").read_text()  # the image installs exactly these


def test_functions_start_from_the_named_environment_with_the_sources_on_their_path(monkeypatch, tmp_path):
    monkeypatch.setenv(FUNCTION_BIN_DIR, str(tmp_path))
    assert function_command() == [str(tmp_path / "functions-framework")]
    monkeypatch.delenv(FUNCTION_BIN_DIR)
    assert Path(function_command()[0]).parent.name == "bin"
    env = function_env(route("catalog-get-product"), 8080, None, {"MONGODB_URL": "mongodb://127.0.0.1:1"})
    assert env["PYTHONPATH"] == str(ROOT)  # as the image's PYTHONPATH=/app
