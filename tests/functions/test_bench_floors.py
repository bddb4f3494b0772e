"""The library floors make bench divides cold starts by (bench/floors) answer 2xx from their real stores."""

import pytest

from bench import run


@pytest.mark.parametrize("name", sorted(run.FLOORS))
def test_a_library_floor_answers_its_first_request_from_its_store(name, shop_settings):
    seconds, probed = run.first_success_seconds(run.FLOORS[name], shop_settings, None,
                                                run.floor_variables(shop_settings))
    assert probed and seconds > 0  # first_success_seconds raises unless the answer was a 2xx


def test_every_function_has_a_floor_for_its_store():
    assert {run.floor_of(route).name for route in run.ROUTES} == {floor.name for floor in run.FLOORS.values()}
