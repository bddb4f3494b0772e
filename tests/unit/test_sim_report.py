"""Costs, break-even and the report: pure pieces, and one small traffic through every platform."""

import csv
import io
import json
import re

import numpy as np
import pytest

from bench.sim import config, costs, engine, report, traces
from bench.sim.inputs import EndpointInputs
from tests.html_tables import Cells


def point(level, knative, always_on, share=0.0, saturated=False):
    return {"requests_per_day": level, "knative_monthly_usd": knative, "always_on_monthly_usd": always_on,
            "cold_start_share": share, "saturated": saturated}


def test_the_break_even_is_interpolated_between_simulated_levels():
    crossing, share = engine._crossing([point(100, 1, 4, 0.5), point(1000, 3, 4, 0.1), point(10_000, 5, 4, 0.0)])

    assert 1000 < crossing < 10_000
    assert crossing == pytest.approx(10 ** 3.5)
    assert share == pytest.approx(0.05)
    assert engine._crossing([point(100, 5, 4)]) == (0.0, 0.0)  # never cheaper
    assert engine._crossing([point(100, 1, 4), point(1000, 2, 4)]) == (None, None)  # cheaper throughout


def test_the_latency_price_is_the_volume_below_which_cold_starts_pass_one_percent():
    points = [point(10, 0, 0, 1.0), point(100, 0, 0, 0.5), point(1000, 0, 0, 0.02), point(10_000, 0, 0, 0.0)]

    assert 1000 < engine._latency_price(points, 0.01) < 10_000
    assert engine._latency_price([point(10, 0, 0, 0.0)], 0.01) is None
    assert engine._latency_price([point(10, 0, 0, 0.5)], 0.01) == "any"


def test_nodes_are_bin_packed_from_requests_at_each_hours_busiest_second():
    seconds = 7200
    pods = np.zeros(seconds)
    pods[10] = 16  # 16 pods of 125m: 15 fit on an e2-standard-2
    pods[3600:] = 1
    hours = costs.node_hours({"a": pods}, {"a": (0.125, 0.125)}, seconds)

    assert costs.pods_per_node(0.125, 0.125) == 15
    assert hours.tolist() == [2, 1]
    sheet = {"vcpu_hour": 0.02, "gib_hour": 0.003}
    assert costs.node_bill(hours, seconds, sheet) == pytest.approx(3 * (2 * 0.02 + 8 * 0.003))


def test_allocation_charges_the_larger_of_request_and_usage():
    sheet = {"vcpu_hour": 3600.0, "gib_hour": 0.0}  # $1 per vCPU-second

    assert costs.allocated_cost(np.array([1, 1]), 0.125, 0.1, np.array([0.05, 0.5]), 0.0, sheet) == pytest.approx(0.625)




@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """Two endpoints for two hours: a busy one and one with a request every ten minutes."""
    out = tmp_path_factory.mktemp("sim")
    rng = np.random.default_rng(3)
    arrivals = {"busy": rng.poisson(5, 7200).astype(np.int64), "rare": np.zeros(7200, dtype=np.int64)}
    arrivals["rare"][300::600] = 1
    traffic = traces.Traffic(name="small", description="two endpoints", seconds=7200, arrivals=arrivals)
    service = config.from_manifest({"metadata": {"name": "x"}, "spec": {"template": {"spec": {
        "containerConcurrency": 50, "containers": [{"resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                                  "limits": {"cpu": "1", "memory": "256Mi"}}}]}}}})
    chosen = {name: EndpointInputs(0.02, 0.002, 0.06, 1.0) for name in arrivals}
    simulation = engine.simulate(traffic, {name: service for name in arrivals}, chosen)
    rows = engine.endpoint_rows(simulation)
    total = engine.totals(simulation, rows)
    table = engine.break_even(simulation, rows, [1] * 24, levels=(100, 10_000))
    data = report.summary(simulation, rows, total, table, {}, 1.0, {}, [])
    report.write_timeline(simulation, out / "timeline.csv")
    report.write_summary(data, out / "summary.json")
    return simulation, data, report.to_html(data, simulation), out


def test_every_platform_serves_the_same_requests_and_the_rare_endpoint_pays_in_cold_starts(small_run):
    _, data, _, _ = small_run
    busy, rare = data["endpoints"]["busy"], data["endpoints"]["rare"]

    assert rare["requests"] == 12
    assert rare["knative"]["cold_starts"] == 12  # every request: the pod went 90 s after the one before
    assert rare["knative"]["waited_share"] == pytest.approx(1)
    assert rare["cloud_run"]["cold_starts"] == 1  # an idle instance lives 15 minutes
    assert rare["always_on"]["cold_starts"] == 0
    assert busy["knative"]["waited_share"] < 0.01
    assert rare["always_on"]["pod_seconds"] == 2 * 7200
    assert rare["knative"]["monthly_usd"] < rare["always_on"]["monthly_usd"]
    before_free_tier = busy["cloud_run"]["monthly_usd_request_based"] + rare["cloud_run"]["monthly_usd_request_based"]
    assert data["total"]["cloud_run"]["monthly_usd_request_based"] < before_free_tier  # free tier, once


def test_the_timeline_has_one_row_per_second_per_endpoint(small_run):
    _, _, _, out = small_run
    rows = list(csv.DictReader(io.StringIO((out / "timeline.csv").read_text())))

    assert list(rows[0]) == report.TIMELINE_COLUMNS.split(",")
    assert len(rows) == 2 * 7200
    rare = [row for row in rows if row["endpoint"] == "rare"]
    assert sum(int(row["cold_starts"]) for row in rare) == 12
    assert json.loads((out / "summary.json").read_text())["trace"]["seconds"] == 7200


def test_the_report_is_self_contained_and_its_break_even_table_shows_the_summary(small_run):
    _, data, page, _ = small_run

    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert page.count("<svg") >= 4
    parser = Cells("break-even")
    parser.feed(page)
    assert parser.rows[0] == report.BREAK_EVEN_HEADER
    assert parser.rows[1:] == report.break_even_rows(data["break_even"])
