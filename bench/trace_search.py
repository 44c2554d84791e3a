"""Server-side trace search over a big stored trace: latency of one page per kind of query.

Stores ``--events`` events (a known workload's strace lines, parsed by the real parser and
stored by the real recorder, as tests/helpers/stored_trace.py does: a getppid loop, a write
every 50th call, a failed openat every 1,000th, two pids), then times
``selectors.trace_search`` (what the pane's endpoint calls) for a page of 200 results,
``--repeat`` times per query: median and p95. Also prints what the chunk index costs the write
path, against packing the same batch. Run from the repository root:

    .venv/bin/python bench/trace_search.py [--events 1000000] [--repeat 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import percentile, stored_trace_run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sysops-bench-") as var_dir:
        run = stored_trace_run(var_dir, args.events)
        from sysops import selectors
        from sysops.models import TraceChunk
        from sysops.tracing.parse import TraceParser
        from sysops.tracing.render import stored_record
        from sysops.tracing.search import TraceQuery, chunk_index
        from tests.helpers.stored_trace import PIDS, STEP_S, T0_S, workload_lines

        chunks = TraceChunk.objects.filter(run=run).count()
        print(f"{chunks:,} chunks")

        batch = TraceParser().feed("".join(workload_lines(3000)))
        index_s = min(_timed(lambda: chunk_index(batch)) for _ in range(5))
        pack_s = min(
            _timed(lambda: TraceChunk.pack([stored_record(e) for e in batch])) for _ in range(5)
        )
        print(
            f"write path per event: chunk index {index_s / len(batch) * 1e6:.2f} µs,"
            f" packing {pack_s / len(batch) * 1e6:.2f} µs"
            f" (the index adds {index_s / pack_s * 100:.1f}%)"
        )

        middle_s = T0_S + args.events // 2 * STEP_S
        queries = {
            "syscall=getppid (everywhere)": (TraceQuery(syscall="getppid"), 0),
            "syscall=openat (1 in 1,000)": (TraceQuery(syscall="openat"), 0),
            "failed only": (TraceQuery(failed=True), 0),
            "syscall=openat, page at 90%": (TraceQuery(syscall="openat"), args.events * 9 // 10),
            "pid (half the chunks)": (TraceQuery(pid=PIDS[1], syscall="openat"), 0),
            "time range, 1 ms mid-trace": (
                TraceQuery(ts_from=middle_s, ts_to=middle_s + 0.001),
                0,
            ),
            "text: one path near the end": (
                TraceQuery(text=f'"/missing/{(args.events - 1) // 1000 * 1000}"'),
                0,
            ),
            "text: 'x\", 1' (1 in 50)": (TraceQuery(text='"x", 1'), 0),
            "text: '= 2' (none; 1 s budget)": (TraceQuery(text="= 2"), 0),
        }
        print(
            f"{'query (page of 200)':<32} {'median ms':>9} {'p95 ms':>7} {'found':>6} {'read':>9}"
        )
        for label, (query, after) in queries.items():
            times_ms = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                page = selectors.trace_search(run, query, after=after)
                times_ms.append((time.perf_counter() - t) * 1e3)
            print(
                f"{label:<32} {statistics.median(times_ms):9.1f}"
                f" {percentile(times_ms, 95):7.1f} {len(page.events):6d} {page.scanned:9,}"
            )
    return 0


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
