"""The access log: every error and slow request has its line; ACCESS_LOG_SAMPLE thins out the answered ones."""

from __future__ import annotations

import json

import httpx

from tests.support import function_alone


def request_lines(log) -> list[dict]:
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [entry for entry in entries if entry.get("message") == "request"]


def test_with_no_sampling_only_errors_are_logged(shop_settings, tmp_path):
    log = tmp_path / "function.log"
    with function_alone("catalog-list-products", {**shop_settings, "ACCESS_LOG_SAMPLE": "0"}, log=log) as catalog:
        for _ in range(3):
            assert httpx.get(f"{catalog.url}/products", timeout=10).status_code == 200
        assert httpx.get(f"{catalog.url}/products", params={"limit": "many"}, timeout=10).status_code == 422

    assert [(entry["status"], entry["path"]) for entry in request_lines(log)] == [(422, "/products")]


def test_by_default_every_request_is_logged(shop_settings, tmp_path):
    log = tmp_path / "function.log"
    with function_alone("catalog-list-products", shop_settings, log=log) as catalog:
        for _ in range(3):
            assert httpx.get(f"{catalog.url}/products", timeout=10).status_code == 200

    assert [entry["status"] for entry in request_lines(log)] == [200, 200, 200]
