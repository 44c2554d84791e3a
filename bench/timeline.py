"""Timeline endpoint cost: reading a large trace's calls once, then answering windows.

Builds N stored-format syscall events on three pids (as TraceChunk holds them), then times
``Calls.of`` (the one pass over the events, done once per trace and kept) and the windows a
person asks for: the whole trace (merged to at most 50,000 slices), a 5 % zoom, a 0.05 % zoom.
Prints seconds and slices per answer. Run from the repository root:

    .venv/bin/python bench/timeline.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sysops.tracing.timeline import Calls  # noqa: E402 - needs the repository root on the path

T0 = 1_700_000_000.0
NAMES = ("read", "write", "epoll_wait", "sendto", "recvfrom")
CALL_SPACING_S = 2e-6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    events = [
        {
            "seq": i,
            "pid": 100 + i % 3,
            "ts": T0 + i * CALL_SPACING_S,
            "kind": "syscall",
            "name": NAMES[i % len(NAMES)],
            "duration_s": 1e-6,
            "errno": None,
            "cut_short": False,
        }
        for i in range(args.events)
    ]
    started = time.perf_counter()
    calls = Calls.of(events, t0=T0)
    print(f"read {args.events:,} calls once: {time.perf_counter() - started:.2f} s")
    span_s = args.events * CALL_SPACING_S
    for label, window in (
        ("whole trace", (None, None)),
        ("whole trace again (kept)", (None, None)),
        ("5 % zoom", (0.5 * span_s, 0.55 * span_s)),
        ("0.05 % zoom", (0.5 * span_s, 0.5005 * span_s)),
    ):
        started = time.perf_counter()
        answer = calls.window(*window)
        elapsed_s = time.perf_counter() - started
        kind = "merged" if answer["merged"] else "exact"
        print(f"{label:26} {elapsed_s:7.3f} s  {len(answer['slices']):6,} slices ({kind})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
