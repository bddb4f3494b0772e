"""One-off upgrade of a Redis that holds carts from before their keys carried the user as hash tag.

    python -m local.rekey_carts        # REDIS_URL and REDIS_KEY_PREFIX as the cart functions have them

Renames `<prefix>cart:<user>` to `<prefix>cart:{<user>}` and `<prefix>cart-order:<user>:<order>` to
`<prefix>cart-order:{<user>}:<order>` (TTLs kept), and deletes the old global `<prefix>carts:active` set: the
sharded index fills again as carts are written. A cart already written under its new key meanwhile is newer: the
old one is then dropped. Safe to run again; run it right after deploying, on the single instance it was written to.
"""

from __future__ import annotations

import redis

from local.config import local_setting


def rekey(client: redis.Redis, prefix: str) -> int:
    """Move every old-style cart and order marker under `prefix` to its tagged key; returns how many moved."""
    moved = 0
    for kind in ("cart", "cart-order"):
        start = f"{prefix}{kind}:"
        for old in client.scan_iter(match=f"{start}*", count=1000):
            rest = old[len(start):]
            if rest.startswith("{"):
                continue
            user, _, order = rest.partition(":")  # a user id has no ':' (shared/ids.py)
            new = f"{start}{{{user}}}" + (f":{order}" if order else "")
            if client.renamenx(old, new):
                moved += 1
            else:
                client.delete(old)
    client.delete(f"{prefix}carts:active")
    return moved


def main() -> None:
    client = redis.Redis.from_url(local_setting("REDIS_URL"), decode_responses=True)
    try:
        print(f"carts and order markers moved to hash-tagged keys: {rekey(client, local_setting('REDIS_KEY_PREFIX'))}")
    finally:
        client.close()


if __name__ == "__main__":
    main()
