"""Generated requests (schemathesis, from openapi.json) through the gateway: no input ever gets a 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ADMIN, bearer


@pytest.mark.parametrize("headers", [ADMIN, bearer("fuzzer")], ids=["admin", "customer"])
def test_no_generated_request_gets_a_server_error(shop, headers, tmp_path):
    command = [str(Path(sys.executable).parent / "st"), "run", f"{shop.url}/openapi.json", "--url", shop.url,
               "--checks", "not_a_server_error", "--max-examples", "15", "--seed", "20261125",
               "-H", f"Authorization: {headers['Authorization']}", "--no-color"]

    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=540)

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
