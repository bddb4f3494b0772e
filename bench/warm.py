"""`python -m bench.warm`: the warm cost table of `make bench` alone (no cold start, latency or seed comparison),
for measuring a change to one endpoint quickly. Same functions, same floor, same stores as `make bench`."""

from __future__ import annotations

import json
import os

from bench import catalog
from bench.run import REQUESTS, machine, stores, table, warm_cost, warm_shop
from bench.runtime import use_image_environment


def main() -> None:
    print(use_image_environment(), flush=True)
    with stores() as settings:
        mix = catalog.seeded_product_mix(settings, REQUESTS)
        with warm_shop(settings) as (shop, hello, fixtures):
            rows, extra = warm_cost(settings, shop, hello, fixtures, mix)
    print(f"load average at the end: {os.getloadavg()}, {machine()}")
    print(table("\nWarm cost: CPU microseconds per request (ratio to hello + raw store round trips)", rows))
    print(json.dumps(extra))


if __name__ == "__main__":
    main()
