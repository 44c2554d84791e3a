"""A 200k-syscall traced run end to end, watched live in headless Chromium.

Prints the events persisted per second while the traced pass ran, whether every traced getppid
reached the database (the NDJSON download counted against the work), and the longest main-thread
task the run page had while the trace streamed (the Long Tasks API; goal: none over 100 ms).
Run from the repository root:

    .venv/bin/python bench/trace_end_to_end.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import LONG_TASKS, app_server, chromium, start_traced_getppid_loop  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    with app_server() as base, chromium() as browser:
        page = browser.new_page()
        page.add_init_script(LONG_TASKS)
        start_traced_getppid_loop(page, base, args.calls)
        page.wait_for_selector("#trace[data-status=tracing]", timeout=120_000)
        started = time.perf_counter()
        page.wait_for_selector("#trace[data-status=done]", timeout=600_000)
        streamed_s = time.perf_counter() - started
        long_tasks = page.evaluate("window.__longTasks")
        run_url = page.url
        with urllib.request.urlopen(run_url + "trace/ndjson/") as response:
            events = [json.loads(line) for line in response]
    getppid = sum(1 for e in events if e["name"] == "getppid")
    print(f"traced events stored: {len(events):,} ({getppid:,} getppid of {args.calls:,} made)")
    print(f"nothing lost: {getppid == args.calls}")
    print(f"traced pass streamed for {streamed_s:.1f} s: {len(events) / streamed_s:,.0f} events/s")
    longest = max(long_tasks, default=0.0)
    over = sum(1 for d in long_tasks if d > 100)
    print(
        f"page main-thread tasks over 50 ms: {len(long_tasks)}; longest {longest:.0f} ms;"
        f" over 100 ms: {over}"
    )
    return 0 if getppid == args.calls else 1


if __name__ == "__main__":
    sys.exit(main())
