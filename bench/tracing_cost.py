"""Tracing cost per traced syscall: ours (strace into a FIFO, parsed, filtered, stored) against
bare strace with the same flags (``sysops.agent.tracer.strace_argv``), pinned to the same one
CPU, writing to the same kind of FIFO that a thread of this process only drains, in the same
run; and what a call outside the traced set costs under ``--seccomp-bpf``.

The work is a Python loop of N getppid calls in /usr/bin/python3 (the sandbox's interpreter);
ours is the ``workload`` experiment's getppid loop through ``run_experiment --trace full``,
whose observer effect (traced minus untraced work, per event) is the figure. Every figure is
the median of --reps runs, the variants interleaved. Run from the repository root:

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
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sysops.agent.tracer import drain, open_fifo, strace_argv  # noqa: E402

PYTHON = "/usr/bin/python3"
LOOP = (
    "import os, time\n"
    "t = time.perf_counter_ns()\n"
    "for _ in range({n}): os.getppid()\n"
    "print(time.perf_counter_ns() - t)\n"
)
OURS = re.compile(r"took ([0-9.]+) ms untraced and ([0-9.]+) ms traced")
RUN_ID = re.compile(r"run #(\d+)")


def loop_ns(prefix: tuple[str, ...] | list[str], calls: int) -> int:
    done = subprocess.run(
        [*prefix, PYTHON, "-S", "-c", LOOP.format(n=calls)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.split()[-1])


@contextmanager
def drained_fifo() -> Iterator[Path]:
    """A FIFO opened as the tracer's is, that a thread drains as the tracer's does
    (``sysops.agent.tracer.drain``) and throws away."""
    with tempfile.TemporaryDirectory(prefix="sysops-bench-fifo-") as directory:
        fifo = Path(directory) / "trace.strace"
        os.mkfifo(fifo, 0o600)
        fd = open_fifo(fifo)
        stop = threading.Event()

        def discard(data: bytes) -> None:
            pass

        thread = threading.Thread(target=drain, args=(fd, stop, discard), daemon=True)
        thread.start()
        try:
            yield fifo
        finally:
            stop.set()
            thread.join()
            os.close(fd)


def ours_us(calls: int, env: dict[str, str], *extra: str) -> tuple[float, int]:
    """µs added per call by our traced pass, and the CPU the runner pinned it to."""
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
            *extra,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    match = OURS.search(done.stdout)
    run = RUN_ID.search(done.stderr)
    assert match and run, (done.stdout, done.stderr)
    untraced_ms, traced_ms = float(match[1]), float(match[2])
    return (traced_ms - untraced_ms) * 1e3 / calls, _trace_cpu(int(run[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    n = args.calls
    cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="sysops-bench-") as var_dir, drained_fifo() as fifo:
        env = {**os.environ, "SYSOPS_VAR_DIR": var_dir, "SYSOPS_TEST_EXPERIMENTS": "1"}
        env.pop("DATABASE_URL", None)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO_ROOT, env=env, check=True
        )
        plain, null, peer, outside, ours, ratios, untraced_set = [], [], [], [], [], [], []
        for _ in range(args.reps):
            base = loop_ns([], n)
            plain.append(base / n)
            # The peer on every CPU: ours runs on the one its run id picks.
            peer_by_cpu = {}
            for cpu in cpus:
                null.append((loop_ns(strace_argv("/dev/null", (), cpu), n) - base) / n / 1e3)
                peer_by_cpu[cpu] = (loop_ns(strace_argv(fifo, (), cpu), n) - base) / n / 1e3
            seccomp = strace_argv("/dev/null", ("--seccomp-bpf", "-e", "trace=openat"), cpus[0])
            outside.append((loop_ns(seccomp, n) - base) / n)
            untraced_set.append(ours_us(n, env, "--param", "trace_set=openat")[0] * 1e3)
            us, cpu = ours_us(n, env)
            ours.append(us)
            peer.append(peer_by_cpu[cpu])
            ratios.append(us / peer_by_cpu[cpu])
    med = statistics.median
    print(f"work: {n:,} getppid calls from a Python loop, median of {args.reps} runs")
    print(f"  flags, both: {' '.join(strace_argv('FIFO', (), cpus[0]))}")
    print(f"  untraced: {med(plain):.0f} ns per call")
    print(f"  µs added per traced syscall, bare strace, same flags, -o /dev/null: {med(null):.1f}")
    print(f"  ... bare strace, same flags, -o a FIFO only drained (the peer): {med(peer):.1f}")
    print(f"  ... ours (FIFO parsed, filtered, stored; in the sandbox): {med(ours):.1f}")
    print(f"  ratio ours / peer on the same CPU: median {med(ratios):.2f} (goal: at most 1.3)")
    print(f"  outside the traced set (--seccomp-bpf -e trace=openat): {med(outside):.0f} ns added")
    print(f"  ... ours, trace set openat (getppid untraced): {med(untraced_set):.0f} ns added")


def _trace_cpu(run_id: int) -> int:
    """The runner's choice (sysops.agent.runner._trace_cpu) for a runner with our affinity."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[run_id % len(cpus)]


if __name__ == "__main__":
    main()
