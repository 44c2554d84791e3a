"""Form POST to the first live event on the run page, in a real browser, over 20 runs.

The clock starts when the browser submits the syscall-cost form and stops when the run page
first shows live data from the run (progress above zero or a chart point). In between: the POST,
the redirect, the page load and websocket, the embedded agent's claim, the runner process
(Django start-up), the sandbox, the worker's start-up and first measured repetition, a flush and
the channel layer. Run from the repository root:

    .venv/bin/python bench/form_to_first_event.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import app_server, chromium, percentile  # noqa: E402

FIRST_EVENT_JS = (
    "() => { const p = document.querySelector('#run-progress progress');"
    " const live = document.getElementById('run-live');"
    " return (p && p.value > 0) || Number(live && live.dataset.points || 0) > 0; }"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    latencies_ms = []
    with app_server() as base, chromium() as browser:
        page = browser.new_page()
        for i in range(args.runs + 1):
            page.goto(f"{base}/experiments/syscall-cost/")
            page.fill("input[name=iterations]", "1000")
            page.fill("input[name=repetitions]", "5")
            page.fill("input[name=warmup]", "0")
            start = time.perf_counter()
            page.click("button[type=submit]")
            page.wait_for_function(FIRST_EVENT_JS, timeout=60_000, polling="raf")
            elapsed_ms = (time.perf_counter() - start) * 1000
            page.wait_for_selector("#run-status[data-status=succeeded]", timeout=60_000)
            if i:  # the first run warms the page cache and the agent
                latencies_ms.append(elapsed_ms)
    print(f"form POST -> first live event on the page, {len(latencies_ms)} runs (after 1 warm-up):")
    median_ms, p95_ms = statistics.median(latencies_ms), percentile(latencies_ms, 95)
    print(f"  median {median_ms:.0f} ms   p95 {p95_ms:.0f} ms")
    print(f"  min {min(latencies_ms):.0f} ms   max {max(latencies_ms):.0f} ms")


if __name__ == "__main__":
    main()
