"""The concurrency the local autoscaler decides on: per-second averages and upstream's window averages."""

from __future__ import annotations

from local.scaling.windows import Meter, Window


def test_a_seconds_average_weights_each_level_by_how_long_it_held():
    meter = Meter(now=10.0)
    meter.change(+2, 10.25)  # two requests from 10.25
    meter.change(-1, 10.75)  # one left at 10.75

    assert meter.close(11.0) == 0.25 * 0 + 0.5 * 2 + 0.25 * 1
    assert meter.close(12.0) == 1.0  # the one still in flight holds the whole next second


def test_a_fresh_series_is_averaged_over_the_buckets_written_so_far_not_the_whole_window():
    window = Window(60)
    window.record(0, 4.0)
    window.record(1, 2.0)

    assert window.average(1) == 3.0


def test_the_average_falls_to_zero_a_whole_window_after_the_last_request():
    window = Window(6)
    window.record(0, 6.0)
    for second in range(1, 6):
        window.record(second, 0.0)

    assert window.average(5) == 1.0
    window.record(6, 0.0)
    assert window.average(6) == 0.0


def test_without_any_record_there_is_no_data_and_after_a_silent_window_there_is_nothing_to_decide():
    window = Window(6)
    assert window.average(3) is None

    window.record(0, 1.0)
    assert window.recent(6) and not window.recent(7)
    assert window.average(7) == 0.0
