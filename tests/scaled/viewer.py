"""A live viewer of one run, in a process of its own:

    DATABASE_URL=… REDIS_URL=… python -m tests.scaled.viewer RUN_ID OUT_PATH

It talks to the real ASGI application through ``channels.testing.WebsocketCommunicator``, in a
process whose settings are the scaled mode's (read at import): the consumer reads its snapshot
from PostgreSQL and its live batches come over Redis (channels_redis), published by an agent in
another process. It keeps the run's samples as the browser does (a snapshot replaces them, a
``samples`` frame appends) and writes JSON lines to OUT_PATH: ``{"ready": true}`` once its
snapshot has arrived, then what it saw when the run ended, the socket closed or the time ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
STATUS = re.compile(r'id="run-status"[^>]*data-status="(\w+)"')
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
WATCH_TIMEOUT_S = 300.0
# After the terminal status, the rest of that batch's frames arrive within this.
DRAIN_S = 1.0


@dataclass
class Seen:
    """What the viewer received, as the browser would keep it."""

    status: str = ""
    closed: bool = False
    # What ended the socket from the server's side, if it was an error (Redis gone, say).
    error: str = ""
    snapshots: int = 0
    live_frames: int = 0
    live_samples: int = 0
    live_seqs: list[int] = field(default_factory=list)
    # Monotonic times of the first and the last live samples frame (for benchmarks).
    first_live_s: float = 0.0
    last_live_s: float = 0.0
    samples: list[list[Any]] = field(default_factory=list)

    def take(self, text: str) -> None:
        if text.startswith("{"):
            frame = json.loads(text)
            if frame["kind"] == "snapshot":
                self.snapshots += 1
                self.samples = list(frame["samples"])
            elif frame["kind"] == "samples":
                self.last_live_s = time.monotonic()
                self.first_live_s = self.first_live_s or self.last_live_s
                self.live_frames += 1
                self.live_samples += len(frame["samples"])
                self.live_seqs.append(frame["seq"])
                self.samples.extend(frame["samples"])
        elif match := STATUS.search(text):
            self.status = match.group(1)


async def next_output(ws: Any, timeout_s: float) -> dict[str, Any]:
    """The application's next message, or its failure as soon as it fails (as daphne closes
    a browser's socket when its consumer fails). WebsocketCommunicator.receive_output notices a
    failed application only when its timeout expires, and cancels a live one when it does."""
    get = asyncio.ensure_future(ws.output_queue.get())
    done, _ = await asyncio.wait(
        {get, ws.future}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
    )
    if get in done:
        return get.result()
    get.cancel()
    if ws.future.done():
        ws.future.result()  # the consumer's error, if it failed
        return {"type": "websocket.close"}
    raise TimeoutError


async def watch(run_id: int, out: Any) -> Seen:
    from channels.testing import WebsocketCommunicator

    from playground.asgi import application

    seen = Seen()
    ws = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=[ORIGIN])
    connected, _ = await ws.connect(timeout=30)
    if not connected:
        seen.closed = True
        return seen
    deadline = time.monotonic() + WATCH_TIMEOUT_S
    ready = False
    try:
        while time.monotonic() < deadline:
            wait_s = DRAIN_S if seen.status in TERMINAL else deadline - time.monotonic()
            try:
                message = await next_output(ws, wait_s)
            except TimeoutError:
                if seen.status in TERMINAL:
                    break
                continue
            except Exception as exc:  # noqa: BLE001 - the consumer's own failure ends the socket
                seen.closed, seen.error = True, f"{type(exc).__name__}: {exc}"
                break
            if message["type"] == "websocket.close":
                seen.closed = True
                break
            seen.take(message.get("text", ""))
            if seen.snapshots == 1 and not ready:
                ready = True
                print(json.dumps({"ready": True}), file=out, flush=True)
    finally:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await ws.disconnect()
    return seen


def main() -> None:
    run_id, out_path = int(sys.argv[1]), sys.argv[2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    import django

    django.setup()
    with open(out_path, "a") as out:
        seen = asyncio.run(watch(run_id, out))
        print(json.dumps({"seen": asdict(seen)}), file=out, flush=True)


if __name__ == "__main__":
    main()
