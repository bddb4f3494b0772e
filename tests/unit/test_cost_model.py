import csv
import io

import pytest

from bench.cost import model, report
from tests.html_tables import Cells

CLUSTER = {"name": "cluster", "kind": "cluster", "vcpu_hour": 0.036, "gib_hour": 0.0036, "date": "d",
           "description": "x", "source": "s"}
REQUEST_BASED = {"name": "run", "kind": "request-based", "vcpu_second": 0.00002, "gib_second": 0.000002,
                 "per_million_requests": 0.4, "rounding_seconds": 0.1, "date": "d", "description": "x", "source": "s",
                 "free_tier_per_month": {"vcpu_seconds": 0, "gib_seconds": 0, "requests": 0}}
KNOBS = model.Knobs(target=10, container_concurrency=20, min_scale=0, cpu_request=0.1, cpu_limit=1.0,
                    memory_request_gib=0.125, memory_limit_gib=0.25)


def measured(name="f", cpu=0.002, latency=0.02, requests=1000):
    return model.Measured(name, requests, 0, 0, cpu * requests, latency, latency, latency, latency, 50 * 2**20)


def test_histogram_quantiles_interpolate_like_prometheus():
    buckets = {"0.01": 50, "0.1": 90, "1": 100, "+Inf": 100}

    assert model.quantile(0.5, buckets) == pytest.approx(0.01)
    assert model.quantile(0.7, buckets) == pytest.approx(0.055)
    assert model.quantile(0.95, buckets) == pytest.approx(0.55)


def test_instance_time_is_bound_by_concurrency_or_by_cpu():
    assert model.instance_seconds_per_request(measured(cpu=0.001, latency=0.05), KNOBS) == pytest.approx(0.005)
    assert model.instance_seconds_per_request(measured(cpu=0.02, latency=0.05), KNOBS) == pytest.approx(0.02)


def test_cluster_cost_charges_the_larger_of_request_and_usage():
    cost = model.cluster_cost_per_request(measured(cpu=0.002, latency=0.02), KNOBS, CLUSTER)

    # 2 ms of instance time, fully busy: 1 vCPU used (> 0.1 requested), 0.125 GiB requested (> 50 MiB RSS)
    assert cost == pytest.approx(0.002 * (1.0 * 0.036 + 0.125 * 0.0036) / 3600)


def test_a_lone_request_is_billed_in_100_ms_steps():
    assert model.billed_seconds(0.0201, 0.1) == pytest.approx(0.1)
    assert model.billed_seconds(0.1, 0.1) == pytest.approx(0.1)
    assert model.billed_seconds(0.1001, 0.1) == pytest.approx(0.2)


def test_scale_to_zero_costs_nothing_without_traffic_and_always_on_costs_two_replicas():
    idle = model.monthly_cluster_cost(measured(), KNOBS, CLUSTER, 0, [1] * 24, always_on=False)
    always = model.monthly_cluster_cost(measured(), KNOBS, CLUSTER, 0, [1] * 24, always_on=True)

    assert idle == 0
    assert always == pytest.approx(2 * 24 * 30 * (0.1 * 0.036 + 0.125 * 0.0036))


def test_sparse_traffic_keeps_a_replica_up_for_the_retention_window():
    one_per_hour = model.monthly_cluster_cost(measured(), KNOBS, CLUSTER, 24, [1] * 24, always_on=False)
    price_per_second = (0.1 * 0.036 + 0.125 * 0.0036) / 3600

    up_per_hour = 3600 * (1 - 2.718281828 ** (-90 / 3600))
    assert one_per_hour / (24 * 30 * price_per_second) == pytest.approx(up_per_hour, rel=1e-3)


def test_the_free_tier_is_taken_off_once_per_account():
    sheet = REQUEST_BASED | {"free_tier_per_month": {"vcpu_seconds": 10, "gib_seconds": 0, "requests": 100}}

    assert model.request_based_bill([(6, 0, 60), (6, 0, 60)], sheet) == pytest.approx(2 * 0.00002 + 20 * 0.4 / 1e6)




def test_the_html_report_shows_exactly_the_csv_numbers():
    profile = {"name": "p", "description": "d", "requests_per_day": {"a": 1000, "b": 50}, "hourly_share": [1] * 24}
    built = report.build([measured("a"), measured("b", cpu=0.01, latency=0.2)], {"a": KNOBS, "b": KNOBS},
                         [CLUSTER, REQUEST_BASED], profile, "test")
    page = report.to_html(built)

    for table_id, rows in (("endpoints", built.rows), ("levels", built.levels)):
        parser = Cells(table_id)
        parser.feed(page)
        assert parser.rows == list(csv.reader(io.StringIO(report.to_csv(rows))))
