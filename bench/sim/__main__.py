"""`make simulate [TRACE=…] [SCALE=…]`: replay a day of traffic through Knative's KPA, Cloud Run and the always-on
design, per endpoint, with the manifests in knative/services and the costs measured in bench/results.

    python -m bench.sim                                   # the generated shop day (bench/sim/shop_day.json)
    python -m bench.sim --trace ../shared/traces/azure-functions-2019-sample/10_inv.csv --scale 2
    python -m bench.sim --trace my-day.csv                # second,endpoint,requests

Writes timeline.csv, summary.json and report.html to bench/results/sim/ (or --out), and prints where the time went.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench.sim import config, engine, inputs, report, traces

RESULTS = config.ROOT / "bench" / "results" / "sim"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", default=os.environ.get("TRACE") or None,
                        help="an Azure Functions 2019 *_inv.csv, or a second,endpoint,requests CSV (default: the "
                             "generated shop day)")
    parser.add_argument("--scale", type=float, default=float(os.environ.get("SCALE") or 1), help="traffic x this")
    parser.add_argument("--seed", type=int, default=None, help="Poisson seed (default: the day file's, or 1)")
    parser.add_argument("--mapping", type=Path, default=traces.AZURE_MAPPING,
                        help="Azure trace function -> shop endpoint (JSON)")
    parser.add_argument("--durations", choices=("endpoint", "trace"), default="endpoint",
                        help="service times of mapped functions: the endpoint's measured ones, or the trace's own")
    parser.add_argument("--cloud-run-concurrency", type=int, default=80)
    parser.add_argument("--services", type=Path, default=config.SERVICES, help="the Knative manifests")
    parser.add_argument("--results", type=Path, default=inputs.RESULTS, help="where cost.json / bench.json are")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--break-even-levels", default=",".join(map(str, engine.BREAK_EVEN_LEVELS)),
                        help="requests per day simulated for the break-even table, comma-separated")
    options = parser.parse_args(argv)
    if options.scale < 0:
        parser.error("--scale must be at least 0")

    clock = time.perf_counter()
    elapsed = {}
    traffic = traces.load(options.trace, options.scale, options.seed, options.mapping, options.durations)
    mapping = json.loads(options.mapping.read_text()) if options.mapping and options.mapping.exists() else {}
    services = config.load_services(options.services)
    measured, found = inputs.load(sorted(set(services) | set(traffic.arrivals)), options.results)
    configs, chosen, notes = engine.resolve(traffic, services, measured, mapping, options.durations)
    elapsed["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    simulation = engine.simulate(traffic, configs, chosen, options.cloud_run_concurrency)
    rows = engine.endpoint_rows(simulation)
    total = engine.totals(simulation, rows)
    elapsed["simulate"] = time.perf_counter() - clock

    clock = time.perf_counter()
    day = json.loads(traces.SHOP_DAY.read_text())
    levels = tuple(sorted(int(float(level)) for level in options.break_even_levels.split(",") if level.strip()))
    table = engine.break_even(simulation, rows, day["hourly_share"], levels) if levels else []
    elapsed["break_even"] = time.perf_counter() - clock

    clock = time.perf_counter()
    options.out.mkdir(parents=True, exist_ok=True)
    if not found:
        notes.append("no bench/results/cost.json or bench.json (make cost-report, make bench): every per-endpoint "
                     "input is an assumed figure")
    data = report.summary(simulation, rows, total, table, found, options.scale, elapsed, notes)
    report.write_timeline(simulation, options.out / "timeline.csv")
    (options.out / "report.html").write_text(report.to_html(data, simulation))
    elapsed["write"] = time.perf_counter() - clock
    report.write_summary(data, options.out / "summary.json")

    print(f"{traffic.description}: {traffic.total:,} requests, {len(simulation.endpoints)} endpoints, "
          f"{traffic.seconds:,} s")
    print(f"{'':28}{'Knative':>16}{'Cloud Run req.':>16}{'Cloud Run inst.':>16}{'always-on':>16}")
    print(f"{'monthly cost':28}{total['knative']['monthly_usd_nodes']:>16,.2f}"
          f"{total['cloud_run']['monthly_usd_request_based']:>16,.2f}"
          f"{total['cloud_run']['monthly_usd_instance_based']:>16,.2f}{total['always_on']['monthly_usd_nodes']:>16,.2f}")
    print(f"{'requests that waited':28}{100 * total['knative']['waited_share']:>15.2f}%"
          f"{100 * total['cloud_run']['waited_share']:>15.2f}%{'':>16}{100 * total['always_on']['waited_share']:>15.2f}%")
    print(f"{'cold starts':28}{total['knative']['cold_starts']:>16,}{total['cloud_run']['cold_starts']:>16,}"
          f"{'':>16}{total['always_on']['cold_starts']:>16,}")
    print("time: " + ", ".join(f"{key} {value:.1f} s" for key, value in elapsed.items())
          + " (goal: a day of 1_inv.csv's 20.8 M requests simulated in under 30 s)")
    print(f"written: {options.out / 'timeline.csv'}, {options.out / 'summary.json'}, {options.out / 'report.html'}")


if __name__ == "__main__":
    main()
