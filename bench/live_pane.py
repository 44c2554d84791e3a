"""The live trace pane's responsiveness during a big full trace, watched in headless Chromium.

A traced getppid loop of ``--calls`` calls streams live to the run page; the Long Tasks API
(PerformanceObserver 'longtask') records every main-thread task over 50 ms from the page's load
to the trace's end. Prints the longest task, how many there were, and what the websocket carried
(frames, bytes). Goal: no task over 50 ms.

A task's wall time includes the time the machine gave other processes (on two cores, the traced
run itself takes one): the main thread's tasks are also read from a Chromium trace, with the CPU
time the renderer spent in each, which does not depend on the machine's load. Run from the
repository root:

    .venv/bin/python bench/live_pane.py [--calls 1000000] [--port 15800]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import (  # noqa: E402
    LONG_TASKS,
    app_server,
    chromium,
    percentile,
    start_traced_getppid_loop,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=None, help="the app server's port")
    args = parser.parse_args()
    frames = 0
    frame_bytes = 0

    def on_frame(payload: str | bytes) -> None:
        nonlocal frames, frame_bytes
        frames += 1
        frame_bytes += len(payload)

    with app_server(args.port) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.add_init_script(LONG_TASKS)
        page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
        start_traced_getppid_loop(page, base, args.calls)
        cdp = page.context.new_cdp_session(page)
        trace: list[dict] = []
        ended: list[bool] = []
        cdp.on("Tracing.dataCollected", lambda params: trace.extend(params["value"]))
        cdp.on("Tracing.tracingComplete", lambda params: ended.append(True))
        cdp.send("Tracing.start", {"categories": "toplevel", "transferMode": "ReportEvents"})
        page.wait_for_selector("#trace[data-status=tracing]", timeout=300_000)
        started = time.perf_counter()
        page.wait_for_function(
            "() => ['done', 'cut', 'failed'].includes(document.getElementById('trace')"
            ".dataset.status)",
            timeout=900_000,
            polling=1000,
        )
        streamed_s = time.perf_counter() - started
        page.wait_for_timeout(1000)  # the last frames' rendering
        long_tasks = page.evaluate("window.__longTasks")
        status = page.get_attribute("#trace", "data-status")
        events = page.evaluate(
            "() => (document.getElementById('trace-count').textContent.match(/([\\d,]+) events/)"
            " || [])[1] || '?'"
        )
        dom_lines = page.evaluate("document.querySelectorAll('#trace-lines .tl').length")
        cdp.send("Tracing.end")
        while not ended:
            page.wait_for_timeout(200)
    main_thread = {
        (e["pid"], e["tid"])
        for e in trace
        if e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    tasks = [
        e
        for e in trace
        if (e["pid"], e["tid"]) in main_thread
        and e.get("ph") == "X"
        and e.get("name") == "ThreadControllerImpl::RunTask"
    ]
    cpu_ms = sorted(e.get("tdur", 0) / 1000 for e in tasks)
    wall_ms = sorted(e.get("dur", 0) / 1000 for e in tasks)
    longest = max(long_tasks, default=0.0)
    print(f"trace {status}: {events} events, streamed live for {streamed_s:.1f} s")
    print(
        f"websocket: {frames:,} frames, {frame_bytes / 1e6:.1f} MB; lines in the DOM: {dom_lines}"
    )
    median = percentile(long_tasks, 50) if long_tasks else 0.0
    print(
        f"main-thread tasks over 50 ms: {len(long_tasks)}; longest {longest:.0f} ms;"
        f" median of them {median:.0f} ms; over 100 ms: {sum(1 for d in long_tasks if d > 100)}"
    )
    if cpu_ms:
        print(
            f"renderer main-thread tasks (Chromium trace): {len(tasks):,}; longest wall"
            f" {wall_ms[-1]:.0f} ms; CPU time: longest {cpu_ms[-1]:.1f} ms,"
            f" p99 {percentile(cpu_ms, 99):.1f} ms, over 50 ms: {sum(1 for c in cpu_ms if c > 50)},"
            f" total {sum(cpu_ms) / 1000:.1f} s"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
