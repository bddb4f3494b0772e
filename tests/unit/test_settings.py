"""Settings are read from the environment as pydantic-settings read them, without importing it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.errors import ServiceUnavailable
from shared.settings import MongoSettings, NotifySettings, ServerSettings, settings

ROOT = Path(__file__).resolve().parents[2]


def test_a_field_is_read_from_its_name_in_capitals_or_any_case_and_an_alias_from_the_alias():
    loaded = NotifySettings.from_environment({"NOTIFY_BACKEND": "aws", "aws_region": "eu-west-3", "UNRELATED": "x"})
    assert (loaded.notify_backend, loaded.aws_region) == ("aws", "eu-west-3")
    assert MongoSettings.from_environment({"mongodb_url": "mongodb://db"}).mongodb_url == "mongodb://db"


def test_values_are_validated_by_type_and_defaults_fill_the_rest():
    loaded = ServerSettings.from_environment({"METRICS_PORT": "9464", "ACCESS_LOG_SAMPLE": "0.5"})
    assert (loaded.metrics_port, loaded.access_log_sample, loaded.max_body_bytes) == (9464, 0.5, 64 * 1024)
    with pytest.raises(ValidationError) as invalid:
        ServerSettings.from_environment({"METRICS_PORT": "not-a-port"})
    assert invalid.value.errors()[0]["loc"] == ("metrics_port",)
    with pytest.raises(ValidationError):
        loaded.metrics_port = 1  # frozen


def test_a_class_builds_its_validator_when_first_read_not_when_imported():
    code = ("from shared.settings import MongoSettings, RedisSettings; before = MongoSettings.__pydantic_complete__; "
            "MongoSettings.from_environment({'MONGODB_URL': 'mongodb://db'}); "
            "print(before, MongoSettings.__pydantic_complete__, RedisSettings.__pydantic_complete__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert result.stdout.split() == ["False", "True", "False"], result.stderr


def test_a_class_level_refusal_names_its_class(monkeypatch):
    from local.scaling.settings import ScalingSettings

    monkeypatch.setenv("SCALING_TARGET", "50")
    monkeypatch.setenv("SCALING_CONTAINER_CONCURRENCY", "10")
    with pytest.raises(ServiceUnavailable, match="ScalingSettings"):
        settings.__wrapped__(ScalingSettings)
