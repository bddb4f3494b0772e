"""Redis storage of carts: one hash per cart (field = SKU, value = quantity, plus `@updated_at`).

Every write is one Lua script, so checks and changes are atomic (no read-modify-write races), and refreshes the
cart's TTL. Taking an order's lines out also sets the marker `cart-order:{<user>}:<order>` in the same script, so
it happens once per order, and an add sent with an Idempotency-Key sets `cart-add-key:{<user>}:<key>` in its
script, so it happens once per key. Every key a script touches carries the user as its hash tag (`cart:{<user>}`), so on
Redis Cluster each script runs on the one primary that owns that user's slot, and carts spread over all slots.

The active-carts gauge counts entries of an index sharded over ACTIVE_BUCKETS sorted sets (`carts:active:<n>`,
by a stable hash of the user): no key every write touches. The user's entry is refreshed when the cart's
`cart-indexed:{<user>}` marker has expired (at most once per INDEX_REFRESH_FRACTION of the TTL), by a second,
best-effort command that runs *before* the cart changes (the bucket is on another slot, so no script can do both):
an instance killed between the two leaves an extra entry, never a cart missing from the index. The index may drop
a cart up to TTL / INDEX_REFRESH_FRACTION before the cart itself expires, and keeps an entry a crash left behind,
or a cart emptied by a crash before its entry was dropped, until the TTL prunes it.

An entry's score rises with every write of it (above the last one, whatever the writers' clocks say), and the
user's `cart-index-score:{<user>}` holds the score the cart was last indexed at; it outlives a clear, for as long
as a cart would. Emptying a cart drops the entry only if its score is still that one, so a write that re-indexed
the user meanwhile keeps its entry; and a write that comes with an older score than the one recorded (another
write indexed after it, perhaps then cleared) indexes again first. So a clear racing adds cannot leave a cart out
of the index. (Not in the cart's hash: a cart function of the revision before reads every other field as a line.)
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone

from prometheus_client import Counter, Gauge

from functions.cart.models import MAX_LINES, MAX_QUANTITY_PER_LINE
from shared.errors import Conflict, IdempotencyKeyReused, NotFound, Unprocessable
from shared.faults import fault_point
from shared.logs import logger
from shared.redis_store import UNAVAILABLE, key, redis, timed
from shared.settings import RedisSettings, settings

ACTIVE_CARTS = Gauge("shop_cart_active_carts", "Carts written within their TTL, in the index buckets this function "
                                               "has written (each as last seen)")
CART_WRITES = Counter("shop_cart_writes", "Cart changes, by operation and outcome", ["operation", "outcome"])
UPDATED_AT = "@updated_at"  # '@' can never start a SKU
ACTIVE_BUCKETS = 16
INDEX_REFRESH_FRACTION = 100  # a cart's index entry is refreshed at most once per TTL / this
INDEX_TRIES = 3  # index writes one cart write may make while other writes of the user index after it
ADDED, UNCHANGED, REMOVED = 1, 0, -1  # what a write does to the cart's index entry

_log = logger("cart")

# Every write script takes KEYS: cart, index marker, index score (then its own). ARGV: now_ms, ttl, index refresh
# seconds, index mode, index score, then its own. Index mode `check`: a change that leaves a cart is made only while
# the marker says the user's index entry is fresh, else the script changes nothing and answers `index_first` with the
# recorded score; the caller writes the entry above that score and runs the script again with `indexed` and the
# entry's score (sets the marker and the score; a score not above the recorded one is `index_first` again) or, when
# the index could not be written, `unindexed` (a marker for a minute: while a bucket's node is out, the user's writes
# do not each wait for it).
_LINES = """
local function lines() return redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], '@updated_at') end
"""
_INDEX_FIRST = """
local recorded = redis.call('GET', KEYS[3]) or ''
if (ARGV[4] == 'check' and redis.call('EXISTS', KEYS[2]) == 0)
   or (ARGV[4] == 'indexed' and tonumber(ARGV[5]) <= (tonumber(recorded) or 0)) then
  return {'index_first', 0, recorded}
end
"""
_TOUCH = """
redis.call('HSET', KEYS[1], '@updated_at', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if ARGV[4] == 'indexed' then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  redis.call('SET', KEYS[3], ARGV[5])
end
redis.call('EXPIRE', KEYS[3], ARGV[2])
if ARGV[4] == 'unindexed' then redis.call('SET', KEYS[2], '0', 'EX', math.min(tonumber(ARGV[3]), 60)) end
return {'ok', 0, redis.call('HGETALL', KEYS[1])}
"""
# An emptied cart is deleted (its recorded score is kept); it answers that score, for the caller to drop the entry.
_EMPTIED = """
if lines() == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {'ok', -1, {}, redis.call('GET', KEYS[3]) or ''}
end
"""
# KEYS 4 (only with an Idempotency-Key): the key's marker, holding the fingerprint of the add it names (sku and
# quantity); set in the same script as the add, so an add is applied once per key however often it is retried.
# ARGV 6..: sku, quantity, max per line, max lines, stock, fingerprint
_ADD = _LINES + """
if KEYS[4] then
  local seen = redis.call('GET', KEYS[4])
  if seen == ARGV[11] then return {'replayed', 0, redis.call('HGETALL', KEYS[1])} end
  if seen then return {'key_reused', 0} end
end
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[6]) or '0')
if current == 0 and lines() >= tonumber(ARGV[9]) then return {'too_many_lines', current} end
local wanted = current + tonumber(ARGV[7])
if wanted > tonumber(ARGV[8]) then return {'over_line_limit', current} end
if wanted > tonumber(ARGV[10]) then return {'over_stock', current} end
""" + _INDEX_FIRST + """
redis.call('HSET', KEYS[1], ARGV[6], wanted)
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[11], 'EX', ARGV[2]) end
""" + _TOUCH
# ARGV 6..: sku, quantity, stock
_SET = """
if redis.call('HEXISTS', KEYS[1], ARGV[6]) == 0 then return {'missing', 0} end
if tonumber(ARGV[7]) > tonumber(ARGV[8]) then return {'over_stock', 0} end
""" + _INDEX_FIRST + """
redis.call('HSET', KEYS[1], ARGV[6], ARGV[7])
""" + _TOUCH
# ARGV 6: sku. Removing the last line deletes the cart: no index entry needed first.
_REMOVE = _LINES + """
if redis.call('HEXISTS', KEYS[1], ARGV[6]) == 0 then return {'missing', 0} end
if lines() > 1 then
""" + _INDEX_FIRST + """
end
redis.call('HDEL', KEYS[1], ARGV[6])
""" + _EMPTIED + _TOUCH
# KEYS 4: order marker. ARGV 6..: sku and ordered quantity for each line.
# A line gone meanwhile stays gone; lines of other SKUs are untouched; the marker makes a repeat change nothing.
_REMOVE_ORDERED = _LINES + """
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {'already_applied', 0, redis.call('HGETALL', KEYS[1])}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
""" + _INDEX_FIRST + """
end
for i = 6, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if current > 0 then
    local left = current - tonumber(ARGV[i + 1])
    if left > 0 then redis.call('HSET', KEYS[1], ARGV[i], left) else redis.call('HDEL', KEYS[1], ARGV[i]) end
  end
end
redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[2])
""" + _EMPTIED + _TOUCH
# KEYS: cart, index marker, index score (kept). Answers REMOVED and the recorded score when there was a cart.
_CLEAR = """
if redis.call('DEL', KEYS[1], KEYS[2]) > 0 then return {-1, redis.call('GET', KEYS[3]) or ''} end
return {0, ''}
"""
# KEYS: one index bucket. ARGV: now_ms, user, ADDED or REMOVED, ttl, a score: ADDED scores the entry above it and
# above the entry's last score; REMOVED drops the entry only at that score or below (not re-indexed since).
# Prunes entries older than the TTL. Answers the entry's score (0 when none) and the bucket's size.
_INDEX = """
local score = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[2]) or '0')
if ARGV[3] == '1' then
  score = math.max(tonumber(ARGV[1]), score + 1, (tonumber(ARGV[5]) or 0) + 1)
  redis.call('ZADD', KEYS[1], score, ARGV[2])
elseif score > 0 and score <= tonumber(ARGV[5]) then
  redis.call('ZREM', KEYS[1], ARGV[2])
  score = 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[4]) * 1000)
return {score, redis.call('ZCARD', KEYS[1])}
"""


# What a keyed add's marker answers on its own (before the catalog is asked): the fingerprint and the cart.
_REPLAY = """
return {redis.call('GET', KEYS[2]) or '', redis.call('HGETALL', KEYS[1])}
"""


@dataclass(frozen=True)
class StoredCart:
    lines: dict[str, int]
    updated_at: datetime | None
    replayed: bool = False  # a keyed add applied before: this write changed nothing


def _user_key(kind: str, user_id: str, *rest: str) -> str:
    """A key of one user's: the user is its hash tag, so all of a user's keys share one Redis Cluster slot."""
    return key(kind, f"{{{user_id}}}", *rest)


def _cart_keys(user_id: str) -> list[str]:
    return [_user_key("cart", user_id), _user_key("cart-indexed", user_id), _user_key("cart-index-score", user_id)]


def active_bucket(user_id: str) -> int:
    """The index bucket of a user: a hash that every process computes alike (unlike Python's `hash`)."""
    return zlib.crc32(user_id.encode()) % ACTIVE_BUCKETS


def _parse(flat: list[str] | dict[str, str], replayed: bool = False) -> StoredCart:
    fields = flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2]))
    stamp = fields.pop(UPDATED_AT, None)
    updated_at = datetime.fromtimestamp(int(stamp) / 1000, timezone.utc) if stamp else None
    return StoredCart({sku: int(quantity) for sku, quantity in fields.items()}, updated_at, replayed)


_registered: dict[tuple[int, str], object] = {}


def _script(source: str):
    """The script registered with this process's client: sent once, then called by its SHA."""
    client = redis()
    found = _registered.get((id(client), source))
    if found is None:
        found = _registered[(id(client), source)] = client.register_script(source)
    return found


async def _run(operation: str, script: str, user_id: str, *args, keys: tuple[str, ...] = ()) -> list:
    """Run a write script on the cart, its index marker and `keys`; counts the outcome it reports first.

    Crash-safe order: when the script asks for it, the user's index entry is written before the cart changes, so an
    instance killed in between leaves an extra index entry (pruned after the TTL), never a cart left out.
    """
    result = await _attempt(operation, script, user_id, ("check", ""), args, keys)
    for tries_left in reversed(range(INDEX_TRIES)):
        if result[0] != "index_first":
            break
        score = await _index(user_id, ADDED, result[2])
        await fault_point("cart.after-index")
        # Out of tries (other writes of this user keep indexing after this one): write without the marker's refresh.
        mode = ("indexed", score) if score is not None and tries_left else ("unindexed", "")
        result = await _attempt(operation, script, user_id, mode, args, keys)
    await fault_point("cart.after-write")
    CART_WRITES.labels(operation, result[0]).inc()
    return result


async def _attempt(operation: str, script: str, user_id: str, mode: tuple[str, int | str], args: tuple,
                   keys: tuple[str, ...]) -> list:
    ttl = settings(RedisSettings).cart_ttl_seconds
    with timed(operation):
        return await _script(script)(keys=[*_cart_keys(user_id), *keys],
                                     args=[_now_ms(), ttl, max(1, ttl // INDEX_REFRESH_FRACTION), *mode, *args])


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _write(operation: str, script: str, user_id: str, *args, keys: tuple[str, ...] = ()) -> StoredCart:
    outcome, change, *result = await _run(operation, script, user_id, *args, keys=keys)
    if outcome not in ("ok", "replayed"):
        raise _refusal(outcome, args[0] if args else "", int(change))
    if int(change) == REMOVED:
        await _index(user_id, REMOVED, result[1])
    return _parse(result[0], replayed=outcome == "replayed")


_bucket_sizes: dict[int, int] = {}


async def _index(user_id: str, change: int, score: str = "") -> int | None:
    """Add the user to their index bucket, scored above `score` (answers the entry's score), or drop the entry a cart
    was indexed at, `score` (none: there is nothing of this cart's to drop). None when Redis could not be
    asked. Best effort: a failure is logged and never fails the cart's write (a write a minute later adds the entry
    again)."""
    if change == UNCHANGED or (change == REMOVED and not score):
        return None
    bucket = active_bucket(user_id)
    try:
        with timed("index"):
            entry, size = await _script(_INDEX)(
                keys=[key("carts", "active", str(bucket))],
                args=[_now_ms(), user_id, change, settings(RedisSettings).cart_ttl_seconds, score])
    except UNAVAILABLE as error:
        _log.warning("active-cart index not updated", extra={"bucket": bucket, "error": type(error).__name__})
        return None
    _bucket_sizes[bucket] = int(size)
    ACTIVE_CARTS.set(sum(_bucket_sizes.values()))
    return int(entry)


def _refusal(outcome: str, sku: str, current: int) -> Exception:
    if outcome == "key_reused":
        return key_reused()
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


def key_reused() -> IdempotencyKeyReused:
    return IdempotencyKeyReused("another add to this cart")


def _add_key(user_id: str, idempotency_key: str) -> str:
    return _user_key("cart-add-key", user_id, idempotency_key)  # after the user's tag: any braces in it are inert


def add_fingerprint(sku: str, quantity: int) -> str:
    return f"{sku} {quantity}"


async def add(user_id: str, sku: str, quantity: int, stock: int, idempotency_key: str | None = None) -> StoredCart:
    """Add to the line; with `idempotency_key`, once per key (a repeat answers the cart, `replayed`)."""
    keys = () if idempotency_key is None else (_add_key(user_id, idempotency_key),)
    return await _write("add_item", _ADD, user_id, sku, quantity, MAX_QUANTITY_PER_LINE, MAX_LINES, stock,
                        add_fingerprint(sku, quantity), keys=keys)


async def replayed_add(user_id: str, idempotency_key: str, sku: str, quantity: int) -> StoredCart | None:
    """The cart, when this keyed add was applied before (None when it was not); 422 when the key named another."""
    with timed("replay"):
        seen, flat = await _script(_REPLAY)(keys=[_user_key("cart", user_id), _add_key(user_id, idempotency_key)])
    if not seen:
        return None
    if seen != add_fingerprint(sku, quantity):
        raise key_reused()
    return _parse(flat, replayed=True)


async def set_quantity(user_id: str, sku: str, quantity: int, stock: int) -> StoredCart:
    return await _write("set_quantity", _SET, user_id, sku, quantity, stock)


async def remove(user_id: str, sku: str) -> StoredCart:
    return await _write("remove_item", _REMOVE, user_id, sku)


async def remove_ordered(user_id: str, order_id: str, lines: list[tuple[str, int]]) -> tuple[StoredCart, bool]:
    """Take an order's quantities out of the cart once: the remaining cart, and False when already done before."""
    outcome, change, remaining, *indexed_at = await _run("remove_ordered", _REMOVE_ORDERED, user_id,
                                                         *(part for line in lines for part in line),
                                                         keys=(_user_key("cart-order", user_id, order_id),))
    if int(change) == REMOVED:
        await _index(user_id, REMOVED, *indexed_at)
    return _parse(remaining), outcome == "ok"


async def clear(user_id: str) -> None:
    with timed("clear"):
        change, indexed_at = await _script(_CLEAR)(keys=_cart_keys(user_id))
    await fault_point("cart.after-write")
    CART_WRITES.labels("clear", "ok").inc()
    await _index(user_id, int(change), indexed_at)


async def get(user_id: str) -> StoredCart:
    with timed("get"):
        return _parse(await redis().hgetall(_user_key("cart", user_id)))


async def skus(user_id: str) -> set[str]:
    with timed("skus"):
        return set(await redis().hkeys(_user_key("cart", user_id))) - {UPDATED_AT}
