"""Fidelity check: does our native getppid loop agree with ``perf bench syscall basic``?

``perf bench syscall basic`` times getppid(2) in C inside perf itself: an independent
measurement of the same kernel entry our native layer reports. Both run here, in one process
tree and back to back, and the ratio should sit near 1. Run from the repository root:

    .venv/bin/python bench/fidelity.py [--reps 30] [--iterations 200000] [--perf-runs 5]

Exits 0 with a message when perf is not installed (Debian: linux-perf), non-zero when perf or the
native extension fails.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

# Run as a script, the repository root is not on sys.path; the native layer lives there.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# perf's syscall benchmarks, best first: "basic" is getppid(2); older perf versions named the
# getpgid variant instead.
PERF_BENCHMARKS = ("basic", "getpgid")
USECS_PER_OP = re.compile(r"([0-9.]+)\s+usecs/op")
PERF_TIMEOUT_S = 120


def perf_ns_per_call(perf: str, benchmark: str) -> float | None:
    """ns per call from one ``perf bench syscall <benchmark>``, or None if perf lacks it."""
    completed = subprocess.run(
        [perf, "bench", "syscall", benchmark],
        capture_output=True,
        text=True,
        timeout=PERF_TIMEOUT_S,
        check=False,
    )
    match = USECS_PER_OP.search(completed.stdout)
    if completed.returncode != 0 or match is None:
        return None
    return float(match.group(1)) * 1_000


def native_ns_per_call(reps: int, iterations: int) -> list[float]:
    # Imported here so that a host without perf gets its message even before a build.
    from sysops.native import loop_ns

    loop_ns("getppid", iterations)  # warm-up: page in the loop, settle the frequency
    return [loop_ns("getppid", iterations) / iterations for _ in range(reps)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30, help="native repetitions")
    parser.add_argument("--iterations", type=int, default=200_000, help="calls per repetition")
    parser.add_argument("--perf-runs", type=int, default=5, help="perf bench runs (10M calls each)")
    args = parser.parse_args(argv)

    perf = shutil.which("perf")
    if perf is None:
        print("perf is not installed (Debian: apt-get install linux-perf); nothing to compare.")
        return 0

    # Finding a benchmark that works runs it once; that run doubles as perf's warm-up.
    benchmark = next(
        (name for name in PERF_BENCHMARKS if perf_ns_per_call(perf, name) is not None), None
    )
    if benchmark is None:
        print(f"error: {perf} bench syscall offers none of {', '.join(PERF_BENCHMARKS)}")
        return 1

    # Alternate the two so that drift during the run affects both alike.
    perf_runs_ns: list[float] = []
    native_reps_ns: list[float] = []
    reps_per_round = max(1, args.reps // args.perf_runs)
    while len(perf_runs_ns) < args.perf_runs or len(native_reps_ns) < args.reps:
        if len(perf_runs_ns) < args.perf_runs:
            value = perf_ns_per_call(perf, benchmark)
            if value is None:
                print(f"error: perf bench syscall {benchmark} stopped working mid-run")
                return 1
            perf_runs_ns.append(value)
        wanted = min(reps_per_round, args.reps - len(native_reps_ns))
        if wanted > 0:
            native_reps_ns.extend(native_ns_per_call(wanted, args.iterations))

    perf_median_ns = statistics.median(perf_runs_ns)
    native_median_ns = statistics.median(native_reps_ns)
    print(f"perf bench syscall {benchmark}: median {perf_median_ns:.1f} ns/call")
    print(f"    {len(perf_runs_ns)} runs: {', '.join(f'{v:.1f}' for v in perf_runs_ns)}")
    print(f"native loop_ns('getppid'):  median {native_median_ns:.1f} ns/call")
    print(
        f"    {len(native_reps_ns)} reps x {args.iterations:,} calls: "
        f"min {min(native_reps_ns):.1f}, max {max(native_reps_ns):.1f}"
    )
    print(f"ratio native / perf: {native_median_ns / perf_median_ns:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
