"""100 live viewers of one run against a real daphne: server memory and CPU, batches delivered.

Every viewer is a real websocket (tests/helpers/wsclient.py) reading as a browser would; the run
is the test-only synthetic experiment. Prints the server's VmRSS before, at its peak and after,
its CPU seconds during the run, the batches and samples each viewer received (all must have the
whole run), and how long a page (GET /) takes while they watch.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.server import Server, daphne_server  # noqa: E402
from tests.helpers.wsclient import FollowedRun, WebSocket, follow_run  # noqa: E402

VIEWERS = 100
SAMPLES = 100_000
RUN_TIMEOUT_S = 600


async def watch(server: Server, run_id: int) -> FollowedRun:
    ws = await WebSocket.connect("127.0.0.1", server.port, f"/ws/runs/{run_id}/")
    try:
        return await follow_run(ws)
    finally:
        ws.close()


def page_latency_s(url: str) -> float:
    started = time.perf_counter()
    urllib.request.urlopen(url, timeout=60).read()
    return time.perf_counter() - started


async def main() -> None:
    env = {"SYSOPS_OUTPUT_CAP_BYTES": str(64 << 20)}
    with daphne_server(env) as server:
        idle_page_s = statistics.median(page_latency_s(server.url + "/") for _ in range(5))
        rss_before = server.rss_bytes()
        run_id = await asyncio.to_thread(server.queue_run, "synthetic", {"samples": SAMPLES})
        cpu_before = server.cpu_s()
        started = time.monotonic()
        viewers = [asyncio.create_task(watch(server, run_id)) for _ in range(VIEWERS)]
        rss_peak, page_s = rss_before, []
        while not all(v.done() for v in viewers):
            rss_peak = max(rss_peak, server.rss_bytes())
            page_s.append(await asyncio.to_thread(page_latency_s, server.url + "/"))
            await asyncio.sleep(0.2)
            if time.monotonic() - started > RUN_TIMEOUT_S:
                raise SystemExit("the run did not finish in time")
        wall_s = time.monotonic() - started
        cpu_s = server.cpu_s() - cpu_before
        results = [v.result() for v in viewers]
        rss_after = server.rss_bytes()
    batches = [seen.batches for seen in results]
    complete = sum(1 for seen in results if seen.samples == SAMPLES and seen.status == "succeeded")
    mib = 1 << 20
    print(f"{VIEWERS} viewers of one run of {SAMPLES:,} samples (synthetic), wall {wall_s:.1f} s")
    print(f"  viewers with every sample and the final status: {complete}/{VIEWERS}")
    print(
        f"  sample batches per viewer: min {min(batches)}, median "
        f"{statistics.median(batches):g}, max {max(batches)}"
    )
    print(
        f"  server VmRSS: {rss_before / mib:.0f} MiB before, {rss_peak / mib:.0f} MiB peak, "
        f"{rss_after / mib:.0f} MiB after"
    )
    print(f"  server CPU during the run: {cpu_s:.1f} s ({cpu_s / wall_s:.0%} of one core)")
    print(
        f"  GET / while watched: median {statistics.median(page_s) * 1000:.0f} ms, max "
        f"{max(page_s) * 1000:.0f} ms (idle: {idle_page_s * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    asyncio.run(main())
