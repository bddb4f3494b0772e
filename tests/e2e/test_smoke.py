"""`make smoke` against the session's shop: the same command an operator runs after every deploy."""

from __future__ import annotations

import os
import subprocess
import sys

from local.processes import ROOT
from tests.support import USER_TOKEN_SETTINGS


def test_smoke_walks_the_whole_journey_through_the_gateway(shop):
    env = {key: value for key, value in os.environ.items() if key not in ("ADMIN_TOKEN", "USER_TOKEN")}
    result = subprocess.run([sys.executable, "-m", "local.smoke", shop.url, "--timeout", "30"], cwd=ROOT,
                            env={**env, **USER_TOKEN_SETTINGS}, capture_output=True, text=True, timeout=100)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke test passed" in result.stdout
    assert result.stdout.count(" ... ok (") == 9  # eight steps and the cleanup


def test_smoke_stops_at_the_first_failure_with_a_non_zero_exit(shop):
    result = subprocess.run([sys.executable, "-m", "local.smoke", shop.url, "--timeout", "5"], cwd=ROOT,
                            env={**os.environ, "ADMIN_TOKEN": "not-a-token", **USER_TOKEN_SETTINGS},
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1, result.stdout
    assert "[3/8] create a product as admin ... FAILED" in result.stdout
    assert "answered 401" in result.stdout and "[4/8]" not in result.stdout
    assert "smoke test FAILED" in result.stdout
