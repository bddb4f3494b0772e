"""Redis storage of carts: one hash per cart (field = SKU, value = quantity, plus `@updated_at`).

Every write is one Lua script, so checks and changes are atomic (no read-modify-write races), and each write
refreshes the cart's TTL and its place in the `carts:active` sorted set that the active-carts gauge counts.
Taking an order's lines out also sets the marker `cart-order:<user>:<order>` in the same script, so it happens
once per order. All keys live on one Redis primary (the scripts touch several keys: use a single instance, not
Redis Cluster).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from prometheus_client import Counter, Gauge

from functions.cart.models import MAX_LINES, MAX_QUANTITY_PER_LINE
from shared.errors import Conflict, NotFound, Unprocessable
from shared.redis_store import key, redis, timed
from shared.settings import RedisSettings, settings

ACTIVE_CARTS = Gauge("shop_cart_active_carts", "Carts written within their TTL, as last seen by this function")
CART_WRITES = Counter("shop_cart_writes", "Cart changes, by operation and outcome", ["operation", "outcome"])
UPDATED_AT = "@updated_at"  # '@' can never start a SKU

_TOUCH = """
redis.call('HSET', KEYS[1], '@updated_at', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]) * 1000)
return {'ok', redis.call('ZCARD', KEYS[2]), redis.call('HGETALL', KEYS[1])}
"""
# KEYS: cart, active set. ARGV: now_ms, ttl, user, sku, quantity, max per line, max lines, stock
_ADD = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[4]) or '0')
if current == 0 then
  local lines = redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], '@updated_at')
  if lines >= tonumber(ARGV[7]) then return {'too_many_lines', current} end
end
local wanted = current + tonumber(ARGV[5])
if wanted > tonumber(ARGV[6]) then return {'over_line_limit', current} end
if wanted > tonumber(ARGV[8]) then return {'over_stock', current} end
redis.call('HSET', KEYS[1], ARGV[4], wanted)
""" + _TOUCH
# ARGV: now_ms, ttl, user, sku, quantity, stock
_SET = """
if redis.call('HEXISTS', KEYS[1], ARGV[4]) == 0 then return {'missing', 0} end
if tonumber(ARGV[5]) > tonumber(ARGV[6]) then return {'over_stock', 0} end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[5])
""" + _TOUCH
# ARGV: now_ms, ttl, user, sku
_REMOVE = """
if redis.call('HDEL', KEYS[1], ARGV[4]) == 0 then return {'missing', 0} end
if redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], '@updated_at') == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
  return {'ok', redis.call('ZCARD', KEYS[2]), {}}
end
""" + _TOUCH
# KEYS: cart, active set, order marker. ARGV: now_ms, ttl, user, then sku and ordered quantity for each line.
# A line gone meanwhile stays gone; lines of other SKUs are untouched; the marker makes a repeat change nothing.
_REMOVE_ORDERED = """
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {'already_applied', redis.call('ZCARD', KEYS[2]), redis.call('HGETALL', KEYS[1])}
end
for i = 4, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if current > 0 then
    local left = current - tonumber(ARGV[i + 1])
    if left > 0 then redis.call('HSET', KEYS[1], ARGV[i], left) else redis.call('HDEL', KEYS[1], ARGV[i]) end
  end
end
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[2])
if redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], '@updated_at') == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
  return {'ok', redis.call('ZCARD', KEYS[2]), {}}
end
""" + _TOUCH
# ARGV: user
_CLEAR = """
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('ZCARD', KEYS[2])
"""


@dataclass(frozen=True)
class StoredCart:
    lines: dict[str, int]
    updated_at: datetime | None


def _cart_key(user_id: str) -> str:
    return key("cart", user_id)


def _parse(flat: list[str] | dict[str, str]) -> StoredCart:
    fields = flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2]))
    stamp = fields.pop(UPDATED_AT, None)
    updated_at = datetime.fromtimestamp(int(stamp) / 1000, timezone.utc) if stamp else None
    return StoredCart({sku: int(quantity) for sku, quantity in fields.items()}, updated_at)


_registered: dict[tuple[int, str], object] = {}


def _script(source: str):
    """The script registered with this process's client: sent once, then called by its SHA."""
    client = redis()
    found = _registered.get((id(client), source))
    if found is None:
        found = _registered[(id(client), source)] = client.register_script(source)
    return found


async def _run(operation: str, script: str, user_id: str, *args, keys: tuple[str, ...] = ()) -> list:
    """Run a write script on the cart, its active-carts entry and `keys`; counts the outcome it reports first."""
    ttl = settings(RedisSettings).cart_ttl_seconds
    with timed(operation):
        result = await _script(script)(keys=[_cart_key(user_id), key("carts", "active"), *keys],
                                       args=[int(time.time() * 1000), ttl, user_id, *args])
    CART_WRITES.labels(operation, result[0]).inc()
    return result


async def _write(operation: str, script: str, user_id: str, *args) -> StoredCart:
    outcome, *result = await _run(operation, script, user_id, *args)
    if outcome != "ok":
        raise _refusal(outcome, args[0] if args else "", int(result[0]))
    ACTIVE_CARTS.set(int(result[0]))
    return _parse(result[1])


def _refusal(outcome: str, sku: str, current: int) -> Exception:
    if outcome == "missing":
        return NotFound(f"The cart has no line for '{sku}'")
    if outcome == "over_stock":
        return Conflict(f"Not enough stock of '{sku}' for that quantity")
    if outcome == "over_line_limit":
        return Unprocessable(f"A line may hold at most {MAX_QUANTITY_PER_LINE}; the cart already has {current}",
                             errors=[{"field": "body.quantity", "type": "less_than_equal",
                                      "message": f"cart line would exceed {MAX_QUANTITY_PER_LINE}"}])
    return Unprocessable(f"A cart may hold at most {MAX_LINES} different products",
                         errors=[{"field": "body.product_sku", "type": "too_many_lines",
                                  "message": f"the cart already has {MAX_LINES} lines"}])


async def add(user_id: str, sku: str, quantity: int, stock: int) -> StoredCart:
    return await _write("add_item", _ADD, user_id, sku, quantity, MAX_QUANTITY_PER_LINE, MAX_LINES, stock)


async def set_quantity(user_id: str, sku: str, quantity: int, stock: int) -> StoredCart:
    return await _write("set_quantity", _SET, user_id, sku, quantity, stock)


async def remove(user_id: str, sku: str) -> StoredCart:
    return await _write("remove_item", _REMOVE, user_id, sku)


async def remove_ordered(user_id: str, order_id: str, lines: list[tuple[str, int]]) -> tuple[StoredCart, bool]:
    """Take an order's quantities out of the cart once: the remaining cart, and False when already done before."""
    outcome, active, remaining = await _run("remove_ordered", _REMOVE_ORDERED, user_id,
                                            *(part for line in lines for part in line),
                                            keys=(key("cart-order", user_id, order_id),))
    ACTIVE_CARTS.set(int(active))
    return _parse(remaining), outcome == "ok"


async def clear(user_id: str) -> None:
    with timed("clear"):
        active = await _script(_CLEAR)(keys=[_cart_key(user_id), key("carts", "active")], args=[user_id])
    CART_WRITES.labels("clear", "ok").inc()
    ACTIVE_CARTS.set(int(active))


async def get(user_id: str) -> StoredCart:
    with timed("get"):
        return _parse(await redis().hgetall(_cart_key(user_id)))


async def skus(user_id: str) -> set[str]:
    with timed("skus"):
        return set(await redis().hkeys(_cart_key(user_id))) - {UPDATED_AT}
