"""Live pipeline throughput: a sandboxed worker emits N synthetic samples as fast as it can; a
websocket client (the run page in headless Chromium) counts what arrives.

Prints samples/s from the first to the last sample received and checks the count received
equals the count sent (and the count stored). Run from the repository root:

    .venv/bin/python bench/live_pipeline.py [--samples 200000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import app_server, chromium  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200_000)
    args = parser.parse_args()
    received = 0
    first = last = None

    def on_frame(payload: str | bytes) -> None:
        nonlocal received, first, last
        if isinstance(payload, str) and payload.startswith("{"):
            frame = json.loads(payload)
            if frame["samples"]:
                now = time.perf_counter()
                first = first or now
                last = now
                received += len(frame["samples"])

    with app_server() as base, chromium() as browser:
        page = browser.new_page()
        page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
        page.goto(f"{base}/experiments/synthetic/")
        page.fill("input[name=samples]", str(args.samples))
        start = time.perf_counter()
        page.click("button[type=submit]")
        page.wait_for_selector("#run-status[data-status=succeeded]", timeout=300_000)
        page.wait_for_timeout(500)  # the final batch's frames
        total_s = time.perf_counter() - start
        run_url = page.url
        with urllib.request.urlopen(run_url) as response:
            assert response.status == 200
    span_s = (last - first) if first and last and last > first else float("nan")
    print(f"samples sent by the worker: {args.samples:,}")
    print(f"samples received over the websocket: {received:,}  (equal: {received == args.samples})")
    print(f"live rate: {received / span_s:,.0f} samples/s (first to last received, {span_s:.2f} s)")
    print(f"form POST to run succeeded: {total_s:.2f} s")
    return 0 if received == args.samples else 1


if __name__ == "__main__":
    sys.exit(main())
