"""The relay delivers claimed rows only while their lease has room for one more delivery: past that, a later tick
(a relay that may take the rows over once the lease ends) delivers them, never two relays at once."""

from __future__ import annotations

import asyncio

from functions.orders import outbox


def test_the_relay_stops_starting_deliveries_when_the_lease_could_end_during_one(monkeypatch):
    monkeypatch.setenv("PEER_TIMEOUT_SECONDS", "2")
    from shared.settings import settings
    settings.cache_clear()
    now = [0.0]
    delivered = []

    async def slow_delivery(row):  # each takes as long as a peer that times out
        delivered.append(row)
        now[0] += 2.0

    attempted = asyncio.run(outbox.deliver_while_leased(list(range(100)), slow_delivery, clock=lambda: now[0]))
    settings.cache_clear()

    slowest = 3 * 2 + 1
    assert attempted == len(delivered) == (outbox.LEASE_SECONDS - slowest) // 2 + 1
    assert now[0] - 2.0 <= outbox.LEASE_SECONDS - slowest  # the last one started with room to finish in the lease


def test_a_peer_timeout_longer_than_the_lease_allows_still_delivers_one_row_a_tick(monkeypatch):
    monkeypatch.setenv("PEER_TIMEOUT_SECONDS", "10")  # 3 x 10 + 1 > the 30 s lease
    from shared.settings import settings
    settings.cache_clear()
    delivered = []

    async def delivery(row):
        delivered.append(row)

    attempted = asyncio.run(outbox.deliver_while_leased([1, 2, 3], delivery, clock=lambda: 0.0))
    settings.cache_clear()

    assert attempted == len(delivered) == 1
