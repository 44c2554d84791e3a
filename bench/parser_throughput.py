"""How many strace lines per CPU-second does TraceParser turn into events, on one core?

Replays the golden fixtures (real strace 6.1 output: Python start-up, bubblewrap set-up, file,
memory, socket, epoll, fork, kill) again and again with shifted pids and timestamps until the
text has at least --lines lines, feeds it in 64 KiB chunks as the runner reads its FIFO, and
reports the median of --runs runs against the goal. Run from the repository root:

    .venv/bin/python bench/parser_throughput.py [--lines 200000] [--runs 5]

Exits non-zero when the median misses the goal.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

# Run as a script, the repository root is not on sys.path; the parser lives there.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sysops.tracing.parse import TraceParser  # noqa: E402 - needs the path set above

GOAL_LINES_PER_S = 50_000
FIXTURES = REPO_ROOT / "tests" / "tracing" / "fixtures"
# Traces written with -o (pid-prefixed, complete): the runner's format.
REPLAYED = ("workload.strace", "sandboxed.strace", "killed.strace")
CHUNK_CHARS = 64 * 1024
PID_SHIFT = 10_000
PID_SHIFTS = 100  # copies before pids repeat; pids stay below the kernel's 4,194,304
_PREFIX = re.compile(r"^(\d+) (\d+\.\d+) ", re.M)


def replay_text(min_lines: int) -> tuple[str, int]:
    """The fixtures repeated, each copy under other pids and later timestamps."""
    sources = [(FIXTURES / name).read_text() for name in REPLAYED]
    copies: list[str] = []
    lines = 0
    copy = 0
    while lines < min_lines:
        for source in sources:
            pid_offset = (copy % PID_SHIFTS) * PID_SHIFT
            ts_offset_s = copy * 10.0

            def shift(match: re.Match[str], pid_offset=pid_offset, ts_offset_s=ts_offset_s) -> str:
                pid = int(match.group(1)) + pid_offset
                return f"{pid} {float(match.group(2)) + ts_offset_s:.6f} "

            copies.append(_PREFIX.sub(shift, source))
            lines += source.count("\n")
            copy += 1
    return "".join(copies), lines


def parse_once(text: str) -> tuple[float, int, int]:
    """Seconds to parse ``text`` in runner-sized chunks, the events, and the unparsed ones."""
    parser = TraceParser()
    events = 0
    unparsed = 0
    # CPU time, not wall time: on a shared host wall time measures the neighbours too.
    started = time.process_time()
    for start in range(0, len(text), CHUNK_CHARS):
        batch = parser.feed(text[start : start + CHUNK_CHARS])
        events += len(batch)
        unparsed += sum(1 for event in batch if event.kind == "unparsed")
    events += len(parser.close())
    return time.process_time() - started, events, unparsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000, help="minimum lines to replay")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (median reported)")
    options = parser.parse_args(argv)

    # One core, stated rather than hoped for: the runner parses on one core too.
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    text, lines = replay_text(options.lines)
    parse_once(text[: 1024 * 1024])  # warm-up: regex caches, allocator
    timings = [parse_once(text) for _ in range(options.runs)]
    _, events, unparsed = timings[0]
    if unparsed:
        # A fast parser that stopped understanding its input is no result.
        print(f"TraceParser left {unparsed:,} of {events:,} events unparsed", file=sys.stderr)
        return 1
    rates = sorted(lines / seconds for seconds, _, _ in timings)
    median = statistics.median(rates)
    print(
        f"TraceParser: {lines:,} lines ({len(text) / 1e6:.1f} MB) -> {events:,} events; "
        f"median {median:,.0f} lines/s over {options.runs} runs "
        f"(min {rates[0]:,.0f}, max {rates[-1]:,.0f}); goal {GOAL_LINES_PER_S:,} lines/s: "
        f"{'met' if median >= GOAL_LINES_PER_S else 'MISSED'} ({median / GOAL_LINES_PER_S:.1f}x)"
    )
    return 0 if median >= GOAL_LINES_PER_S else 1


if __name__ == "__main__":
    sys.exit(main())
