"""Tracing cost per traced syscall: ours (strace into a FIFO, parsed, filtered, stored) against
bare strace with the same flags (``sysops.agent.tracer.strace_argv``), pinned to the same one
CPU, writing to the same kind of FIFO that a thread of this process only drains, in the same
run; and what a call outside the traced set costs under ``--seccomp-bpf``.

The work is a Python loop of N getppid calls in /usr/bin/python3 (the sandbox's interpreter);
ours is the ``workload`` experiment's getppid loop through ``run_experiment --trace full``,
whose observer effect (traced minus untraced work, per event) is the figure. Each figure is
given twice: wall time, which on a CPU shared with other work measures that work too, and CPU
time (the tracer's and its tracees', plus the reader's: the bench's drain thread, our runner),
which holds still. Every figure is the median of --reps runs, the variants interleaved. The
peer that counts is bare strace around the same sandbox and worker as ours: on a busy host a
traced call waits far longer in the sandbox (its cgroup) than outside it, which is the
sandbox's doing, not the tracer's. Run from the repository root (the sandbox needs
SYSOPS_SANDBOX_UIDS like a run):

    .venv/bin/python bench/tracing_cost.py [--calls 50000] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import django  # noqa: E402

from sysops.agent.tracer import drain, open_fifo, strace_argv  # noqa: E402

PYTHON = "/usr/bin/python3"
WORKLOAD = "sysops.experiments.workload.probe"
LOOP = (
    "import os, time\n"
    "t = time.perf_counter_ns()\n"
    "for _ in range({n}): os.getppid()\n"
    "print(time.perf_counter_ns() - t)\n"
)


@dataclass(frozen=True)
class Cost:
    """What a loop cost: wall time in its own clock, CPU time of its whole process tree (the
    tracer and its tracees) and of this process (the FIFO's drain thread)."""

    wall_ns: int
    cpu_s: float

    def added_us(self, base: Cost, calls: int) -> tuple[float, float]:
        """µs per call added over ``base``: (wall, CPU)."""
        return (
            (self.wall_ns - base.wall_ns) / calls / 1e3,
            (self.cpu_s - base.cpu_s) / calls * 1e6,
        )


def loop(prefix: tuple[str, ...] | list[str], calls: int) -> Cost:
    own = resource.getrusage(resource.RUSAGE_SELF)
    proc = subprocess.Popen(
        [*prefix, PYTHON, "-S", "-c", LOOP.format(n=calls)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    # wait4's usage counts the child and every descendant it reaped: strace and its tracees.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, out
    now = resource.getrusage(resource.RUSAGE_SELF)
    drain_s = (now.ru_utime + now.ru_stime) - (own.ru_utime + own.ru_stime)
    return Cost(int(out.split()[-1]), usage.ru_utime + usage.ru_stime + drain_s)


def sandboxed(calls: int, code_dir: Path, wrapper: tuple[str, ...]) -> Cost:
    """The workload's getppid loop in the worker in the real sandbox (its uid, rlimits, cgroup),
    as a run's pass starts it, under ``wrapper``; wall time is the worker's own, between its
    markers, as ours; CPU time is the sandbox cgroup's (strace runs in it) and the drain's."""
    from sysops import sandbox

    own = resource.getrusage(resource.RUSAGE_SELF)
    events_r, events_w = os.pipe()
    policy = sandbox.Policy(code_dir=code_dir)
    proc = sandbox.start(
        policy,
        sandbox.worker_command(policy),
        pass_fds=(events_w,),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        wrapper=wrapper,
    )
    os.close(events_w)
    assert proc.stdin is not None
    job = {"probe": WORKLOAD, "params": {"case": "getppid_loop", "count": calls}}
    proc.stdin.write(json.dumps({**job, "events_fd": events_w}).encode())
    proc.stdin.close()
    with os.fdopen(events_r, "rb") as events:
        lines = events.read().splitlines()
    proc.wait()
    outcome = proc.outcome()
    proc.cleanup()
    done = next(json.loads(line) for line in lines if b'"type":"done"' in line)
    now = resource.getrusage(resource.RUSAGE_SELF)
    drain_s = (now.ru_utime + now.ru_stime) - (own.ru_utime + own.ru_stime)
    return Cost(done["work_ns"], (outcome.cpu_s or 0.0) + drain_s)


@contextmanager
def drained_fifo() -> Iterator[Path]:
    """A FIFO opened as the tracer's is, that a thread drains as the tracer's does
    (``sysops.agent.tracer.drain``) and throws away."""
    with tempfile.TemporaryDirectory(prefix="sysops-bench-fifo-") as directory:
        fifo = Path(directory) / "trace.strace"
        os.mkfifo(fifo)
        # strace runs as the sandbox's uid for the sandboxed peer; this FIFO is only drained.
        os.chmod(directory, 0o755)
        os.chmod(fifo, 0o666)
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


def ours_us(calls: int, env: dict[str, str], *extra: str) -> tuple[float, float | None, int]:
    """µs added per call by our traced pass (wall, CPU) and the CPU it was pinned to."""
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
            "--json",
            *extra,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    run = json.loads(done.stdout)
    observer = run["trace"]["observer"]
    wall_us = (observer["traced_work_s"] - observer["untraced_work_s"]) * 1e6 / calls
    cpu_us = observer.get("cpu_per_event_us")
    if cpu_us is not None:
        cpu_us = cpu_us * observer["events"] / calls
    return wall_us, cpu_us, _trace_cpu(int(run["run"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    n = args.calls
    cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="sysops-bench-") as var_dir, drained_fifo() as fifo:
        env = {**os.environ, "SYSOPS_VAR_DIR": var_dir, "SYSOPS_TEST_EXPERIMENTS": "1"}
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
        django.setup()
        from sysops import sandbox

        env.pop("DATABASE_URL", None)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO_ROOT, env=env, check=True
        )
        rows: dict[str, list[tuple[float, float | None]]] = {
            "bare strace, same flags, -o /dev/null": [],
            "bare strace, same flags, -o a FIFO only drained": [],
            "... around the same sandbox and worker as ours (the peer)": [],
            "ours (FIFO parsed, filtered, stored; in the sandbox)": [],
            "outside the traced set: bare strace --seccomp-bpf -e trace=openat": [],
            "outside the traced set: ours, trace set openat": [],
        }
        names = list(rows)
        plain, ratios, cpu_ratios = [], [], []
        os.chmod(var_dir, 0o755)  # the sandbox uid reads the staged code
        code_dir = Path(var_dir) / "code"
        sandbox.stage_code(code_dir)
        for _ in range(args.reps):
            base = loop([], n)
            plain.append(base.wall_ns / n)
            sandboxed_base = sandboxed(n, code_dir, ())
            # The peers on every CPU: ours runs on the one its run id picks.
            peer_by_cpu = {}
            for cpu in cpus:
                rows[names[0]].append(loop(strace_argv("/dev/null", (), cpu), n).added_us(base, n))
                rows[names[1]].append(loop(strace_argv(fifo, (), cpu), n).added_us(base, n))
                traced = sandboxed(n, code_dir, strace_argv(fifo, (), cpu))
                peer_by_cpu[cpu] = traced.added_us(sandboxed_base, n)
            seccomp = strace_argv("/dev/null", ("--seccomp-bpf", "-e", "trace=openat"), cpus[0])
            rows[names[4]].append(loop(seccomp, n).added_us(base, n))
            rows[names[5]].append(ours_us(n, env, "--param", "trace_set=openat")[:2])
            wall_us, cpu_us, cpu = ours_us(n, env)
            rows[names[3]].append((wall_us, cpu_us))
            rows[names[2]].append(peer_by_cpu[cpu])
            ratios.append(wall_us / peer_by_cpu[cpu][0])
            if cpu_us is not None:
                cpu_ratios.append(cpu_us / peer_by_cpu[cpu][1])
    med = statistics.median
    print(f"work: {n:,} getppid calls from a Python loop, median of {args.reps} runs")
    print(f"  flags, both: {' '.join(strace_argv('FIFO', (), cpus[0]))}")
    print(f"  untraced: {med(plain):.0f} ns per call")
    print("  µs added per call (wall | CPU of tracer, tracees and reader):")
    for name, values in rows.items():
        cpu_values = [c for _, c in values if c is not None]
        cpu_text = f"{med(cpu_values):7.2f}" if cpu_values else "      —"
        print(f"    {med(w for w, _ in values):7.2f} | {cpu_text}  {name}")
    print(f"  ratio ours / peer on the same CPU, wall: median {med(ratios):.2f} (goal: <= 1.3)")
    if cpu_ratios:
        print(f"  ratio ours / peer, CPU time: median {med(cpu_ratios):.2f}")


def _trace_cpu(run_id: int) -> int:
    """The runner's choice (sysops.agent.runner._trace_cpu) for a runner with our affinity."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[run_id % len(cpus)]


if __name__ == "__main__":
    main()
