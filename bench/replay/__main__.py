"""`make replay [TRACE=…]`: replay a short trace against `make up SCALING=knative`, then run the KPA simulation of
bench/sim on the same trace with the cold start and service times measured in the run, and print predicted vs
observed replica-seconds, cold starts and time to scale to zero, per function.

    python -m bench.replay                                    # bench/replay/burst.csv: 3 minutes, a burst, an idle tail
    python -m bench.replay --trace my.csv                     # second,endpoint,requests (at most 5 minutes)
    python -m bench.replay --trace ../shared/traces/azure-functions-2019-sample/10_inv.csv --start-minute 540

Each request is sent at its second, the second's requests spread evenly over it (the simulation assumes arrivals
uniform within a second). Replicas and cold starts are read from /_local/scaling once a second, until every replayed
function is back at zero. Writes bench/results/replay/{summary.json,timeline.csv}.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import time
from pathlib import Path

import httpx
import numpy as np

from bench.replay import compare
from bench.sim import traces
from local.config import GATEWAY_PORT

HERE = Path(__file__).resolve().parent
DEFAULT_TRACE = HERE / "burst.csv"
RESULTS = HERE.parent / "results" / "replay"
MAX_SECONDS = 300
MODEL_MARGIN_SECONDS = 30
# The endpoints a trace can drive: GETs that need no account; a product page asks for an id no product has (the
# same lookup as a hit, and no dependency on what the catalog holds).
REPLAYABLE = {"catalog-list-products": "/products?limit=20", "catalog-get-product": f"/products/{'0' * 24}",
              "catalog-search-products": "/search?q=coffee"}


def load(trace: Path, start_minute: int, seconds: int, scale: float, seed: int) -> tuple[dict[str, np.ndarray], list]:
    traffic = traces.load(str(trace), scale, seed)
    start = start_minute * 60
    arrivals, notes = {}, []
    for name, counts in sorted(traffic.arrivals.items()):
        window = counts[start:start + seconds].astype(np.int64)
        if name not in REPLAYABLE and window.sum():
            notes.append(f"{name}: not replayable here ({int(window.sum())} requests left out)")
        elif window.sum():
            arrivals[name] = window
    if not arrivals:
        raise SystemExit(f"no request of {', '.join(REPLAYABLE)} in that part of {trace}")
    return arrivals, notes


async def scaling(client: httpx.AsyncClient) -> dict:
    response = await client.get("/_local/scaling")
    if response.status_code != 200:
        raise SystemExit(f"{client.base_url} does not scale functions (/_local/scaling answered "
                         f"{response.status_code}): start the shop with `make up SCALING=knative`")
    return response.json()["functions"]


async def at_zero(client: httpx.AsyncClient, names: list[str]) -> dict:
    """Wait until every replayed function has no replica, so the replay starts from zero as the model does."""
    state = await scaling(client)
    for name in names:
        if state[name]["min_scale"]:
            raise SystemExit(f"{name} keeps {state[name]['min_scale']} replica(s) (min-scale): it cannot be replayed "
                             "from zero")
    patience = max(state[name]["stable_window"] + state[name]["scale_to_zero_grace"] for name in names) + 30
    deadline = time.monotonic() + patience
    while busy := [name for name in names if state[name]["replicas"] or state[name]["in_flight"]]:
        if time.monotonic() > deadline:
            raise SystemExit(f"still not at zero after {patience:.0f}s: {', '.join(busy)}")
        print(f"waiting for {', '.join(busy)} to scale to zero first", flush=True)
        await asyncio.sleep(5)
        state = await scaling(client)
    return state


async def tick_aligned(client: httpx.AsyncClient) -> float:
    """A moment (time.monotonic) on one of the autoscaler's decision ticks, so that the trace's seconds are its
    1-second buckets and its decisions fall where the model's do (a second's shift can change a decision)."""
    sent = time.monotonic()
    state = (await client.get("/_local/scaling")).json()
    answered = time.monotonic()
    uptime, tick = state["seconds"], state["tick_seconds"]
    next_tick = (uptime // tick + 2) * tick  # at least one tick ahead: time to schedule every request
    origin = (sent + answered) / 2 + next_tick - uptime
    await asyncio.sleep(max(0.0, origin - time.monotonic()))
    return origin


async def replay(base_url: str, arrivals: dict[str, np.ndarray]) -> dict:
    names = sorted(arrivals)
    seconds = len(next(iter(arrivals.values())))
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        before = await at_zero(client, names)
        patience = max(before[name]["stable_window"] + before[name]["scale_to_zero_grace"] for name in names) + 60
        statuses: dict[str, dict[int, int]] = {name: {} for name in names}
        origin = await tick_aligned(client)

        async def send(name: str, at: float) -> None:
            await asyncio.sleep(max(0.0, origin + at - time.monotonic()))
            try:
                status = (await client.get(REPLAYABLE[name])).status_code
            except httpx.HTTPError:
                status = 0
            statuses[name][status] = statuses[name].get(status, 0) + 1

        sending = [asyncio.create_task(send(name, second + (index + 0.5) / count))
                   for name in names for second, count in enumerate(arrivals[name].tolist())
                   for index in range(count)]
        print(f"replaying {sum(int(a.sum()) for a in arrivals.values())} requests over {seconds} s to "
              f"{', '.join(names)}", flush=True)
        pods = {name: [] for name in names}
        cold = {name: [] for name in names}
        second = 0
        while True:
            await asyncio.sleep(max(0.0, origin + second + 1 - time.monotonic()))
            state = await scaling(client)
            for name in names:
                pods[name].append(state[name]["ready"] + state[name]["starting"])
                cold[name].append(state[name]["cold_starts"] - before[name]["cold_starts"])
            second += 1
            if second >= seconds and all(not pods[name][-1] for name in names):
                break
            if second >= seconds + patience:
                print(f"stopped observing {patience:.0f} s after the trace: not every function reached zero")
                break
            if second % 15 == 0:
                print(f"  {second:4d} s  " + "  ".join(f"{name} {pods[name][-1]}" for name in names), flush=True)
        await asyncio.gather(*sending)
        after = await scaling(client)
    return {"before": before, "after": after, "pods": pods, "cold_starts": cold, "statuses": statuses}


def measured(before: dict, after: dict) -> tuple[float, float]:
    """Mean time a request spent on a replica, and mean spawn-to-listening time of a replica, in this run."""
    served = after["served"] - before["served"]
    service = (after["served_seconds_total"] - before["served_seconds_total"]) / served if served else 0.01
    ready = after["became_ready"] - before["became_ready"]
    start = (after["cold_start_seconds_total"] - before["cold_start_seconds_total"]) / ready if ready else 1.0
    return service, start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--start-minute", type=int, default=0, help="where the slice of the trace begins")
    parser.add_argument("--seconds", type=int, default=180, help=f"how much of the trace (at most {MAX_SECONDS})")
    parser.add_argument("--scale", type=float, default=1.0, help="traffic x this")
    parser.add_argument("--seed", type=int, default=1, help="Poisson seed for per-minute traces")
    parser.add_argument("--url", default=f"http://127.0.0.1:{GATEWAY_PORT}")
    parser.add_argument("--out", type=Path, default=RESULTS)
    options = parser.parse_args(argv)
    if not 1 <= options.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be between 1 and {MAX_SECONDS}")

    arrivals, notes = load(options.trace, options.start_minute, options.seconds, options.scale, options.seed)
    observed = asyncio.run(replay(options.url, arrivals))
    rows, timeline = [], []
    for name, counts in sorted(arrivals.items()):
        # Observation ends once every function is at zero; after it nothing arrives and nothing runs, and the model
        # gets as long to reach zero too.
        pods = np.array(observed["pods"][name] + [0] * MODEL_MARGIN_SECONDS)
        observed["cold_starts"][name] += [observed["cold_starts"][name][-1]] * MODEL_MARGIN_SECONDS
        padded = np.concatenate([counts, np.zeros(max(0, len(pods) - len(counts)), dtype=np.int64)])
        before, after = observed["before"][name], observed["after"][name]
        service, start = measured(before, after)
        run = compare.predict(name, padded, after, service, start)
        result = compare.row(name, padded, pods, after["cold_starts"] - before["cold_starts"], run)
        result.update(service_time_seconds=round(service, 4), cold_start_seconds=round(start, 3),
                      statuses=observed["statuses"][name])
        if after["held_by_cap"] > before["held_by_cap"]:
            notes.append(f"{name}: the global replica cap held back replicas it wanted, which the model does not "
                         "know of: start the shop with a higher SCALING_MAX_REPLICAS_TOTAL to compare the KPA alone")
        rows.append(result)
        for second, (requests, seen, predicted) in enumerate(zip(padded.tolist(), pods.tolist(), run.pods.tolist())):
            timeline.append({"second": second, "function": name, "requests": requests, "observed_replicas": seen,
                             "predicted_replicas": predicted, "observed_cold_starts": observed["cold_starts"][name][second],
                             "predicted_cold_starts": int(run.cold_starts[: second + 1].sum())})

    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "summary.json").write_text(json.dumps({"trace": str(options.trace), "notes": notes,
                                                          "functions": rows}, indent=1))
    with open(options.out / "timeline.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(timeline[0]))
        writer.writeheader()
        writer.writerows(timeline)
    print()
    for note in notes:
        print(f"note: {note}")
    for r in rows:
        print(f"{r['function']}: measured here: {1000 * r['service_time_seconds']:.1f} ms per request on a replica, "
              f"cold start {r['cold_start_seconds']:.2f} s; answers {r['statuses']}")
    print(compare.table(rows))
    print(f"written: {options.out / 'summary.json'}, {options.out / 'timeline.csv'}")


if __name__ == "__main__":
    main()
