"""`make up`'s runner tells a developer what is missing instead of failing with a stack trace."""

from __future__ import annotations

import os
import subprocess
import sys

from local.processes import ROOT, free_port


def run_local(**settings: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GATEWAY_PORT": str(free_port()), "FUNCTION_BASE_PORT": "47100",
           "METRICS_BASE_PORT": "47200", **settings}
    return subprocess.run([sys.executable, "-m", "local.run"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_an_unreachable_redis_is_named_with_what_to_do(mongo_url):
    result = run_local(MONGODB_URL=mongo_url, REDIS_URL="redis://127.0.0.2:1/0")

    assert result.returncode == 1
    assert "Redis does not answer at 127.0.0.2:1" in result.stderr
    assert "REDIS_URL" in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_an_unreachable_postgres_is_named_with_what_to_do(mongo_url, redis_url):
    result = run_local(MONGODB_URL=mongo_url, REDIS_URL=redis_url, DATABASE_URL="postgresql://postgres@127.0.0.2:1/x")

    assert result.returncode == 1
    assert "PostgreSQL does not answer at 127.0.0.2:1" in result.stderr
    assert "DATABASE_URL" in result.stderr and "Traceback" not in result.stderr + result.stdout
