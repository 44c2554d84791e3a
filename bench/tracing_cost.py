"""Tracing cost per traced syscall: ours (strace -f -ttt -T -yy into a FIFO, parsed, filtered,
stored) against bare ``strace -f -o /dev/null`` on the same work, in the same run; and the cost
of a syscall outside the traced set under ``--seccomp-bpf``.

The work is a Python loop of N getppid calls in /usr/bin/python3 (the sandbox's interpreter).
Each figure is the median of --reps runs. Run from the repository root:

    .venv/bin/python bench/tracing_cost.py [--calls 50000] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = "/usr/bin/python3"
LOOP = (
    "import os, time\n"
    "t = time.perf_counter_ns()\n"
    "for _ in range({n}): os.getppid()\n"
    "print(time.perf_counter_ns() - t)\n"
)
OURS = re.compile(r"took ([0-9.]+) ms untraced and ([0-9.]+) ms traced .*about ([0-9.]+) µs")


def loop_ns(prefix: list[str], calls: int) -> int:
    done = subprocess.run(
        [*prefix, PYTHON, "-c", LOOP.format(n=calls)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1])


def ours_us(calls: int, env: dict[str, str]) -> float:
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "run_experiment",
            "workload",
            "--param",
            "case=getppid_loop",
            "--param",
            f"count={calls}",
            "--trace",
            "full",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    match = OURS.search(done.stdout)
    assert match, done.stdout
    untraced_ms, traced_ms = float(match[1]), float(match[2])
    return (traced_ms - untraced_ms) * 1e3 / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    n = args.calls
    with tempfile.TemporaryDirectory(prefix="sysops-bench-") as var_dir:
        env = {**os.environ, "SYSOPS_VAR_DIR": var_dir, "SYSOPS_TEST_EXPERIMENTS": "1"}
        env.pop("DATABASE_URL", None)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO_ROOT, env=env, check=True
        )
        plain, bare, pinned, outside, ours = [], [], [], [], []
        for _ in range(args.reps):
            base = loop_ns([], n)
            plain.append(base / n)
            bare.append((loop_ns(["strace", "-f", "-o", "/dev/null"], n) - base) / n / 1e3)
            one_cpu = ["taskset", "--cpu-list", "0", "strace", "-f", "-o", "/dev/null"]
            pinned.append((loop_ns(one_cpu, n) - base) / n / 1e3)
            seccomp = ["strace", "-f", "--seccomp-bpf", "-e", "trace=openat", "-o", "/dev/null"]
            outside.append((loop_ns(seccomp, n) - base) / n)
            ours.append(ours_us(n, env))
    med = statistics.median
    print(f"work: {n:,} getppid calls from a Python loop, median of {args.reps} runs")
    print(f"  untraced: {med(plain):.0f} ns per call")
    print(f"  µs added per traced syscall, bare strace -f -o /dev/null: {med(bare):.1f}")
    print(f"  ... bare strace, tracer and tracee on one CPU (taskset): {med(pinned):.1f}")
    print(f"  ... ours (one CPU, -ttt -T -yy, FIFO, parsed, stored): {med(ours):.1f}")
    print(f"  ratio ours / bare strace on one CPU: {med(ours) / med(pinned):.2f}")
    print(f"  ratio ours / bare strace on the scheduler's CPUs: {med(ours) / med(bare):.2f}")
    print(f"  outside the traced set (--seccomp-bpf -e trace=openat): {med(outside):.0f} ns added")


if __name__ == "__main__":
    main()
