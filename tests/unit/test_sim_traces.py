"""Traffic inputs: Azure Functions 2019 files read by header names, per-second CSVs, the generated shop day."""

import json
from pathlib import Path

import numpy as np
import pytest

from bench.sim import traces

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "traces" / "azure-functions-2019-sample"
MAPPING = {"template": "catalog-get-product", "functions": {"aaaa": "cart-get-cart"}}


def write_azure(folder: Path, original_order: bool) -> Path:
    """Two functions over three minutes, in either of the sample's two column orders."""
    if original_order:
        invocations = "HashOwner,HashApp,HashFunction,Trigger,1,2,3\no1,app1,aaaa1111,http,60,0,6\no2,app2,bbbb2222,timer,1,2,3\n"
        runs = "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum\no1,app1,aaaa1111,40,66,1,90\no2,app2,bbbb2222,2500,6,1,9000\n"
    else:
        invocations = "HashFunction,HashApp,HashOwner,minute_1,minute_2,minute_3\naaaa1111,app1,o1,60,0,6\nbbbb2222,app2,o2,1,2,3\n"
        runs = "HashFunction,HashApp,HashOwner,Count,Average,Minimum,Maximum\naaaa1111,app1,o1,66,40,1,90\nbbbb2222,app2,o2,6,2500,1,9000\n"
    (folder / "3_inv.csv").write_text(invocations)
    (folder / "3_run.csv").write_text(runs)
    return folder / "3_inv.csv"


@pytest.mark.parametrize("original_order", [False, True])
def test_azure_files_are_read_by_their_header_names_whatever_the_column_order(tmp_path, original_order):
    traffic = traces.azure(write_azure(tmp_path, original_order), 1, 3, MAPPING)

    assert sorted(traffic.arrivals) == ["azure-bbbb2222", "cart-get-cart"]
    assert traffic.seconds == 180
    assert [int(traffic.arrivals["cart-get-cart"][m * 60:(m + 1) * 60].sum()) for m in range(3)] == [60, 0, 6]
    assert [int(traffic.arrivals["azure-bbbb2222"][m * 60:(m + 1) * 60].sum()) for m in range(3)] == [1, 2, 3]
    # an unmapped function keeps the trace's own duration; a mapped one takes its endpoint's unless asked
    assert traffic.trace_service_time == {"azure-bbbb2222": 2.5}
    assert traces.azure(write_azure(tmp_path, original_order), 1, 3, MAPPING, durations="trace") \
        .trace_service_time["cart-get-cart"] == pytest.approx(0.04)


def test_each_minute_is_spread_over_its_seconds_by_a_seeded_poisson_process():
    per_minute = np.array([600, 0, 60_000, 7])
    first = traces.spread_minutes(per_minute, np.random.default_rng(5))
    again = traces.spread_minutes(per_minute, np.random.default_rng(5))

    assert (first == again).all()
    assert first.reshape(4, 60).sum(axis=1).tolist() == per_minute.tolist()
    busy = first[120:180]
    assert busy.mean() == pytest.approx(1000)
    assert busy.var() == pytest.approx(1000, rel=0.5)  # Poisson: the variance is the mean


def test_scaling_keeps_the_expected_count_in_whole_requests():
    counts = np.full(10_000, 3)
    scaled = traces.scaled_counts(counts, 0.5, np.random.default_rng(1))

    assert scaled.dtype == np.int64
    assert set(np.unique(scaled)) <= {1, 2}
    assert scaled.sum() == pytest.approx(15_000, rel=0.02)
    assert (traces.scaled_counts(counts, 2, np.random.default_rng(1)) == 6).all()


def test_a_per_second_csv_is_read_by_header_names(tmp_path):
    path = tmp_path / "day.csv"
    path.write_text("endpoint,requests,second\ncart-get-cart,3,0\ncatalog-get-product,5,2\ncart-get-cart,1,4\n")
    traffic = traces.load(str(path), 1, 1)

    assert traffic.seconds == 5
    assert traffic.arrivals["cart-get-cart"].tolist() == [3, 0, 0, 0, 1]
    assert traffic.arrivals["catalog-get-product"].tolist() == [0, 0, 5, 0, 0]


def test_a_file_that_is_neither_format_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")

    with pytest.raises(SystemExit):
        traces.load(str(path), 1, 1)


def test_the_generated_day_repeats_for_a_seed_and_follows_its_shape():
    spec = json.loads(traces.SHOP_DAY.read_text())
    day = traces.shop_day(spec, 1, 42)
    again = traces.shop_day(spec, 1, 42)
    other = traces.shop_day(spec, 1, 43)
    tenfold = traces.shop_day(spec, 10, 42)

    assert all((day.arrivals[name] == again.arrivals[name]).all() for name in day.arrivals)
    assert any((day.arrivals[name] != other.arrivals[name]).any() for name in day.arrivals)
    products = day.arrivals["catalog-get-product"]
    assert day.seconds == traces.DAY_SECONDS
    assert products.sum() == pytest.approx(spec["requests_per_day"]["catalog-get-product"] * 1.1, rel=0.1)
    assert products[4 * 3600:5 * 3600].sum() < products[20 * 3600:21 * 3600].sum() / 10  # night vs evening
    sale = traces.clock_seconds(spec["flash_sale"]["start"])
    assert products[sale + 120:sale + 1080].mean() > 5 * products[sale - 3600:sale - 120].mean()
    assert tenfold.arrivals["catalog-get-product"].sum() == pytest.approx(10 * products.sum(), rel=0.05)
    # a PingSource ticks once a minute whatever the scale
    assert day.arrivals["orders-outbox-relay"].sum() == tenfold.arrivals["orders-outbox-relay"].sum() == 1440


@pytest.mark.skipif(not SAMPLE.exists(), reason="../shared/traces is not beside this checkout")
def test_the_real_azure_sample_keeps_its_daily_totals():
    busy = traces.load(str(SAMPLE / "1_inv.csv"), 1, 1)
    sample = traces.load(str(SAMPLE / "10_inv.csv"), 1, 1)

    assert busy.total == 20_820_188
    assert busy.seconds == traces.DAY_SECONDS
    assert sample.total == 69_586
    mapping = json.loads(traces.AZURE_MAPPING.read_text())
    assert all(any(f.startswith(prefix) for prefix in mapping["functions"])
               for origin in sample.origin.values() for f in origin)


def test_the_full_data_sets_file_names_find_their_durations_and_unmapped_functions_can_be_dropped(tmp_path):
    (tmp_path / "invocations_per_function_md.anon.d01.csv").write_text(
        "HashOwner,HashApp,HashFunction,Trigger,1,2\no1,app1,aaaa1111,http,3,4\no2,app2,bbbb2222,http,5,6\n")
    (tmp_path / "function_durations_percentiles.anon.d01.csv").write_text(
        "HashOwner,HashApp,HashFunction,Average,Count\no1,app1,aaaa1111,20,7\no2,app2,bbbb2222,900,11\n")
    invocations = tmp_path / "invocations_per_function_md.anon.d01.csv"

    assert traces.companion(invocations, "run").name == "function_durations_percentiles.anon.d01.csv"
    assert traces.companion(invocations, "mem").name == "app_memory_percentiles.anon.d01.csv"
    everything = traces.load(str(tmp_path), 1, 1, mapping_path=None)
    assert everything.trace_service_time == {"azure-aaaa1111": 0.02, "azure-bbbb2222": 0.9}
    only_mapped = traces.azure(invocations, 1, 1, MAPPING | {"unmapped": "drop"})
    assert list(only_mapped.arrivals) == ["cart-get-cart"]
    assert only_mapped.total == 7
