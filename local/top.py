"""`make top`: the scaling of `make up SCALING=knative`, per function, refreshed every second (Ctrl-C quits).

Reads the gateway's /_local/scaling (GATEWAY_PORT, or --url). Functions at zero that have never started are
folded into one line, so what scales stays on screen.
"""

from __future__ import annotations

import argparse
import sys
import time

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from local.config import GATEWAY_PORT

COLUMNS = ("function", "ready/desired", "starting", "draining", "panic", "in flight", "held", "stable c.",
           "panic c.", "target", "cold starts", "503s", "crashes")


def _concurrency(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(state: dict | None, error: str | None = None) -> Group:
    if state is None:
        return Group(Text(f"no scaling gateway answers: {error}", style="bold red"),
                     Text("start the shop with `make up SCALING=knative`"))
    table = Table(expand=False, header_style="bold")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "function" else "right")
    never = []
    for name, f in sorted(state["functions"].items()):
        if not f["cold_starts"] and not f["replicas"] and not f["waiting"]:
            never.append(name)
            continue
        style = "bold yellow" if f["panic"] else ("dim" if not f["replicas"] else "")
        table.add_row(name, f"{f['ready']}/{f['desired']}", str(f["starting"]), str(f["draining"]),
                      "PANIC" if f["panic"] else "", str(f["in_flight"]), str(f["waiting"]),
                      _concurrency(f["stable_concurrency"]), _concurrency(f["panic_concurrency"]),
                      f"{f['target']:g}", str(f["cold_starts"]), str(f["rejected"]), str(f["crashes"]), style=style)
    heading = Text(f"replicas {state['replicas_total']}/{state['max_replicas_total']} (global cap)   "
                   f"autoscaler up {state['seconds']:.0f} s, deciding every {state['tick_seconds']} s   "
                   f"{time.strftime('%H:%M:%S')}", style="bold")
    parts = [heading, table]
    if never:
        parts.append(Text(f"at zero, never started: {', '.join(never)}", style="dim"))
    return Group(*parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=f"http://127.0.0.1:{GATEWAY_PORT}")
    parser.add_argument("--once", action="store_true", help="print the table once and exit")
    options = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 150)  # a pipe or a file gets the whole table
    with httpx.Client(base_url=options.url, timeout=2) as client:
        def frame() -> Group:
            try:
                response = client.get("/_local/scaling")
                if response.status_code != 200:
                    return render(None, f"{options.url}/_local/scaling answered {response.status_code}")
                return render(response.json())
            except httpx.HTTPError as error:
                return render(None, f"{options.url}: {type(error).__name__}")

        if options.once:
            console.print(frame())
            return
        try:
            with Live(frame(), console=console, refresh_per_second=4, screen=False) as live:
                while True:
                    time.sleep(1)
                    live.update(frame())
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
