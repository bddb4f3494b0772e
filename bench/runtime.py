"""The environment the benchmarks run the functions in: the image's, not the developer's.

The dev environment holds test and bench tools that a function would otherwise pay for: FastAPI brings
opentelemetry, which redis-py then imports and hooks; pydantic scans every installed package's entry points for
plugins; the editable install adds a path finder to every import. And this machine sets PYTHONDONTWRITEBYTECODE,
so without compiled files each start would compile our sources again, where the image ships them compiled
(Dockerfile: compileall). `use_image_environment()` builds `.venv-runtime` with the project's runtime dependencies
only (once, again when pyproject.toml changes), compiles the sources, and makes local.processes start functions
from it with the sources on PYTHONPATH, as the image does.
"""

from __future__ import annotations

import compileall
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from local.processes import FUNCTION_BIN_DIR, ROOT

RUNTIME = ROOT / ".venv-runtime"
SOURCES = ("shared", "functions", "bench")


def runtime_dependencies() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def ensure_runtime() -> Path:
    """The image's environment, built or brought up to date; its bin directory. Its packages are pinned to the
    versions of the environment running the benchmark (the one the tests ran in), so both run the same code."""
    stamp = RUNTIME / ".installed"
    pinned = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout
    wanted = "\n".join(runtime_dependencies()) + "\n--\n" + pinned
    if not stamp.exists() or stamp.read_text() != wanted:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(RUNTIME)], check=True)
        constraints = RUNTIME / "constraints.txt"
        constraints.write_text(pinned)
        subprocess.run([str(RUNTIME / "bin" / "python"), "-m", "pip", "install", "--quiet", "-c", str(constraints),
                        *runtime_dependencies()], check=True)
        stamp.write_text(wanted)
    return RUNTIME / "bin"


def use_image_environment() -> str:
    """Start functions from the image's environment with compiled sources; what to print about it."""
    bin_dir = ensure_runtime()
    for source in SOURCES:
        compileall.compile_dir(ROOT / source, quiet=1)
    os.environ[FUNCTION_BIN_DIR] = str(bin_dir)
    return f"functions run from {bin_dir.relative_to(ROOT)} (runtime dependencies only, sources compiled)"
