"""`make simulate` from the command line: the generated shop day and the Azure Functions sample in ../shared, at a
small SCALE and two break-even levels so that it stays quick. Each run writes its three outputs."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import pytest

from local.processes import ROOT

SAMPLE = ROOT.parent / "shared" / "traces" / "azure-functions-2019-sample"
COLUMNS = ["second", "endpoint", "requests", "concurrency", "ready_pods", "desired_pods", "panic", "cold_starts",
           "queued"]


def make_simulate(out: Path, **variables: str) -> subprocess.CompletedProcess:
    arguments = [f"{name}={value}" for name, value in variables.items()]
    # -o: the installed virtualenv is taken as it is (make test installed it)
    return subprocess.run(["make", "-s", "-o", ".venv/.installed", "simulate", *arguments,
                           f"SIMULATE_ARGS=--out {out} --break-even-levels 100,100000"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def check_outputs(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    endpoints = summary["endpoints"]
    with open(out / "timeline.csv", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == COLUMNS
        rows = sum(1 for _ in reader)
    assert rows == summary["trace"]["seconds"] * len(endpoints)
    for platform in ("knative", "cloud_run", "always_on"):
        assert summary["total"][platform]["waited_share"] >= 0
    assert summary["total"]["knative"]["monthly_usd_nodes"] > 0
    assert summary["total"]["cloud_run"]["monthly_usd_request_based"] >= 0
    assert summary["total"]["always_on"]["monthly_usd_nodes"] > 0
    assert {row["endpoint"] for row in summary["break_even"]} == set(endpoints)
    page = (out / "report.html").read_text()
    assert page.count("<svg") >= 4
    assert "<script" not in page and not re.search(r'(src|href)="https?://', page)  # self-contained
    assert 'id="break-even"' in page
    return summary


def test_make_simulate_replays_the_generated_shop_day(tmp_path):
    result = make_simulate(tmp_path, SCALE="0.05")

    assert result.returncode == 0, result.stderr
    assert "requests that waited" in result.stdout
    summary = check_outputs(tmp_path)
    assert summary["trace"]["seconds"] == 86_400
    assert "catalog-get-product" in summary["endpoints"]
    assert all(row["always_on"]["pod_seconds"] >= 2 * 86_400 for row in summary["endpoints"].values())


@pytest.mark.skipif(not SAMPLE.exists(), reason="../shared/traces is not beside this checkout")
def test_make_simulate_replays_the_azure_functions_sample(tmp_path):
    result = make_simulate(tmp_path, TRACE=str(SAMPLE / "10_inv.csv"), SCALE="0.2")

    assert result.returncode == 0, result.stderr
    summary = check_outputs(tmp_path)
    assert summary["trace"]["requests"] == pytest.approx(0.2 * 69_586, rel=0.05)
    assert "catalog-list-products" in summary["endpoints"]  # the mapping file's choice for the bursty function
