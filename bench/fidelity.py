"""Fidelity: the getppid figure users see (the native C loop inside the sandbox, through its
seccomp filter) beside the same loop outside the sandbox and ``perf bench syscall basic``.

Three measurements of the same kernel entry, alternated round by round so that drift hits all
alike:
- ``perf bench syscall basic``: getppid(2) timed by perf itself, outside the sandbox;
- the native extension's ``loop_ns("getppid")`` in this process, outside the sandbox;
- the syscall-cost experiment's native layer, run through the real runner in the real sandbox
  (bubblewrap, its seccomp filter, its cgroup): the number the run page shows.
It also measures what the sandbox's filter adds per call outside the sandbox
(``sysops/sandbox/filter_cost.py``, the figure the dashboard and the run pages state), so the
gap between the sandboxed and the unsandboxed loop can be checked against it. Prints medians
(ns per call) and the ratios. Run from the repository root:

    SYSOPS_SANDBOX_UIDS=START:COUNT .venv/bin/python bench/fidelity.py [--rounds 3] [--reps 10]

Without perf (Debian: linux-perf) the perf column is skipped; the rest still runs.
"""

from __future__ import annotations

import argparse
import os
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

from _sandboxed import series_values  # noqa: E402 - the script's own directory is on the path

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


def outside_ns_per_call(reps: int, iterations: int) -> list[float]:
    from sysops.native import loop_ns

    loop_ns("getppid", iterations)  # warm-up: page in the loop, settle the frequency
    return [loop_ns("getppid", iterations) / iterations for _ in range(reps)]


def sandboxed_ns_per_call(reps: int, iterations: int) -> list[float]:
    """The syscall-cost experiment's native getppid, per repetition, as stored for its chart."""
    params = {
        "call": "getppid",
        "layers": ["native"],
        "iterations": iterations,
        "repetitions": reps,
        "warmup": 1,
    }
    return series_values("syscall-cost", params, "native")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the three")
    parser.add_argument("--reps", type=int, default=10, help="loop repetitions per round")
    parser.add_argument("--iterations", type=int, default=200_000, help="calls per repetition")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from sysops.native import build
    from sysops.sandbox.filter_cost import measure

    build.build()

    perf = shutil.which("perf")
    benchmark = None
    if perf is not None:
        # Finding a benchmark that works runs it once; that run doubles as perf's warm-up.
        benchmark = next((b for b in PERF_BENCHMARKS if perf_ns_per_call(perf, b)), None)
    if benchmark is None:
        print("perf bench syscall is not available (Debian: linux-perf): no perf column")

    perf_ns: list[float] = []
    outside_ns: list[float] = []
    inside_ns: list[float] = []
    for _ in range(args.rounds):
        if perf is not None and benchmark is not None:
            value = perf_ns_per_call(perf, benchmark)
            if value is None:
                print(f"error: perf bench syscall {benchmark} stopped working mid-run")
                return 1
            perf_ns.append(value)
        outside_ns.extend(outside_ns_per_call(args.reps, args.iterations))
        inside_ns.extend(sandboxed_ns_per_call(args.reps, args.iterations))
    try:
        cost = measure()
    except (OSError, RuntimeError) as exc:  # a host too busy to start the probe in time
        cost = None
        print(f"the sandbox filter's cost could not be measured: {exc}")

    # Medians are the figures; the fastest repetitions are the ones a busy host disturbed
    # least (on 2 shared cores, the medians carry other people's work).
    columns = {
        "native loop outside the sandbox": outside_ns,
        "native loop inside (users')": inside_ns,
    }
    if perf_ns:
        columns = {f"perf bench syscall {benchmark}": perf_ns, **columns}
    print(f"getppid, ns per call ({args.iterations:,} calls per loop repetition; perf: 10M calls)")
    print(f"  {'':34} {'median':>8} {'fastest':>8} {'n':>4}")
    for name, values in columns.items():
        print(f"  {name:34} {statistics.median(values):8.1f} {min(values):8.1f} {len(values):4}")
    if cost is not None:
        print(
            f"  the sandbox's filter ({cost.instructions} instructions), measured outside: "
            f"+{cost.added_ns:.1f} ns per call "
            f"({cost.unfiltered_ns:.1f} -> {cost.filtered_ns:.1f}, fastest repetitions)"
        )
    for label, pick in (("median", statistics.median), ("fastest", min)):
        inside, outside = pick(inside_ns), pick(outside_ns)
        line = f"ratios ({label}): inside / outside {inside / outside:.3f}"
        if perf_ns:
            line += f", inside / perf {inside / pick(perf_ns):.3f}"
            line += f", outside / perf {outside / pick(perf_ns):.3f}"
        print(line + f"; inside - outside {inside - outside:+.1f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
