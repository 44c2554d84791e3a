"""A viewer that never reads, against a real daphne and a real run: the server drops it once
its unread frames pass the cap, instead of holding them all; other viewers are not affected."""

from __future__ import annotations

import asyncio
import socket

from tests.helpers.server import daphne_server
from tests.helpers.wsclient import FollowedRun, WebSocket, connect_unread, follow_run

BUFFER_CAP_BYTES = 256 << 10
SAMPLES = 400_000  # about 10 MB of frames for each viewer (under SYSOPS_MAX_EVENTS)
RSS_GROWTH_MAX_BYTES = 32 << 20
RUN_TIMEOUT_S = 300


async def _watch(server, run_id: int) -> tuple[FollowedRun, int, bool]:
    path = f"/ws/runs/{run_id}/"
    slow = connect_unread("127.0.0.1", server.port, path, receive_buffer_bytes=4096)
    reader = await WebSocket.connect("127.0.0.1", server.port, path)
    rss_peak = server.rss_bytes()

    async def sample_rss() -> None:
        nonlocal rss_peak
        while True:
            rss_peak = max(rss_peak, server.rss_bytes())
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample_rss())
    try:
        seen = await asyncio.wait_for(follow_run(reader), RUN_TIMEOUT_S)
    finally:
        sampler.cancel()
    reader.close()
    return seen, rss_peak, _was_closed(slow)


def _was_closed(sock: socket.socket) -> bool:
    """Reads what reached the socket before the server cut it off: True at its end."""
    sock.settimeout(10)
    try:
        while sock.recv(1 << 16):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    finally:
        sock.close()
    return True


def test_a_viewer_that_never_reads_is_dropped_and_the_server_stays_small():
    env = {
        "SYSOPS_WS_BUFFER_MAX_BYTES": str(BUFFER_CAP_BYTES),
        "SYSOPS_OUTPUT_CAP_BYTES": str(64 << 20),  # the samples' NDJSON is about 16 MB
    }
    with daphne_server(env) as server:
        rss_before = server.rss_bytes()
        run_id = server.queue_run("synthetic", {"samples": SAMPLES})
        seen, rss_peak, dropped = asyncio.run(_watch(server, run_id))
        log = (server.var_dir / "server.log").read_text()
    print(f"VmRSS {rss_before >> 20} MiB before, {rss_peak >> 20} MiB at most during the run")
    assert seen.status == "succeeded", seen.reason
    assert seen.samples == SAMPLES  # the viewer that reads got everything
    assert dropped and "over 262144 bytes unread" in log
    assert rss_peak - rss_before < RSS_GROWTH_MAX_BYTES
