"""Servers the tests run from Debian packages (Prometheus, Alertmanager): `make test` installs them; a test run
without them installs the package when apt can, and skips only when it cannot."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def debian_binary(binary: str, package: str) -> str:
    """The path of `binary`, installing Debian's `package` when it is missing and apt is usable (as root)."""
    found = shutil.which(binary)
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(f"{binary} is missing and apt cannot install {package} here (`make test` installs it)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"apt-get could not install {package}: {result.stderr[-2000:]}"
    found = shutil.which(binary)
    assert found, f"{package} is installed but has no {binary}"
    return found
