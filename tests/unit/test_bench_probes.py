"""make bench times every function to a successful answer from its store: each route has a cold-start probe
(bench/probes.py), and the probe asks that route, not another, so a new function cannot go unprobed and a probe
cannot drift to a path its function does not serve."""

from urllib.parse import urlsplit

import pytest

from bench.probes import PROBES, Fixtures, probe
from shared.routes import ROUTES


class Made(Fixtures):
    """The fixtures with what they make through the warm shop stubbed: the probes are built, nothing is sent."""

    def reservation(self) -> str:
        return "0f1e2d3c4b5a69788796a5b4c3d2e1f0"

    def shopper(self) -> tuple[str, dict]:
        return "cold-shopper", {"Authorization": "Bearer shopper"}

    def new_product(self) -> tuple[str, str]:
        return "64b000000000000000000001", '"v1"'

    def dead_outbox_row(self) -> str:
        return "00000000-0000-4000-8000-000000000001"

    def dead_letter(self) -> str:
        return "00000000-0000-4000-8000-000000000002"


FIXTURES = Made(shop=None, admin={"Authorization": "Bearer admin"}, customer={"Authorization": "Bearer user"},
                user="bench-user", sku="BENCH-1", product_id="64b000000000000000000000",
                order_id="00000000-0000-4000-8000-000000000000", order_body={}, tokens={})


def test_every_route_has_a_cold_start_probe_and_no_probe_names_a_missing_route():
    assert set(PROBES) == {route.name for route in ROUTES}


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_each_probe_asks_its_own_route(route):
    made = probe(route.name, FIXTURES)

    if route.signature == "cloudevent":
        assert (made.method, made.path) == ("POST", "/")
        assert made.headers["ce-specversion"] == "1.0" and made.headers["ce-id"]
    else:
        assert made.method == route.method
        assert route.match(urlsplit(made.path).path) is not None, made.path
    if route.auth in ("user", "admin") or route.visibility != "public":
        assert made.headers  # a user's, an admin's or its caller's token: the probe is let in


def test_a_probe_is_new_for_each_start():
    first, second = probe("orders-create-order", FIXTURES), probe("orders-create-order", FIXTURES)

    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    assert probe("notify-order-created", FIXTURES).headers["ce-id"] != probe("notify-order-created",
                                                                              FIXTURES).headers["ce-id"]


def test_the_probe_and_what_it_needs_are_made_once_before_the_clock_starts(monkeypatch):
    from types import SimpleNamespace

    import httpx

    from bench import run
    from shared.routes import route

    happened = []
    monkeypatch.setattr(run, "probe", lambda name, fixtures: happened.append("probe built") or probe(name, FIXTURES))
    monkeypatch.setattr(run.time, "perf_counter", lambda: happened.append("clock started") or 0.0)
    monkeypatch.setattr(run, "start_function", lambda *args: SimpleNamespace(process=None))
    monkeypatch.setattr(run, "stop", lambda processes: None)
    monkeypatch.setattr(run.httpx.Client, "request", lambda *args, **kwargs: httpx.Response(200))

    _, probed = run.first_success_seconds(route("catalog-release-stock"), {}, FIXTURES)

    # A probe built again inside the timed part would make another reservation there, and time it.
    assert happened == ["probe built", "clock started", "clock started"] and probed
