"""Carts written before the hash-tagged keys are moved to them, with their TTLs, once."""

from __future__ import annotations

import uuid

import redis

from local.rekey_carts import rekey
from local.stores import delete_keys
from tests.support import RUN_ID


def test_old_carts_and_order_markers_move_to_tagged_keys_and_the_newer_cart_wins(redis_url):
    prefix = f"test:{RUN_ID}:rekey-{uuid.uuid4().hex[:6]}:"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    order = str(uuid.uuid4())
    try:
        client.hset(f"{prefix}cart:alice", mapping={"MUG": 2, "@updated_at": 1})
        client.expire(f"{prefix}cart:alice", 500)
        client.set(f"{prefix}cart-order:alice:{order}", 1, ex=500)
        client.hset(f"{prefix}cart:bob", mapping={"OLD": 1})
        client.hset(f"{prefix}cart:{{bob}}", mapping={"NEW": 1})  # written after the deploy
        client.zadd(f"{prefix}carts:active", {"alice": 1, "bob": 1})

        assert rekey(client, prefix) == 2
        assert rekey(client, prefix) == 0

        assert client.hgetall(f"{prefix}cart:{{alice}}") == {"MUG": "2", "@updated_at": "1"}
        assert 0 < client.ttl(f"{prefix}cart:{{alice}}") <= 500
        assert client.exists(f"{prefix}cart-order:{{alice}}:{order}")
        assert client.hgetall(f"{prefix}cart:{{bob}}") == {"NEW": "1"}
        assert not client.exists(f"{prefix}cart:alice", f"{prefix}cart:bob", f"{prefix}carts:active")
    finally:
        delete_keys(redis_url, f"{prefix}*")
        client.close()
