"""Go's syscall.RawSyscall(getppid) against the native C loop and ``perf bench syscall basic``,
in one run: three independent timings of the same kernel entry, and the ratios between them
(Go's syscall.Syscall too, for what entersyscall/exitsyscall add).

The Go loop runs in the Go program the set-up builds (sysops/native/bin/sysgo, ``serve``
mode), outside the sandbox, like the other two. Rounds alternate Go, C and perf so that drift
affects all alike. Run from the repository root:

    .venv/bin/python bench/go_syscall.py [--reps 30] [--iterations 200000] [--perf-runs 5]

Without perf (Debian: linux-perf) it compares Go with C only.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from fidelity import PERF_BENCHMARKS, perf_ns_per_call  # noqa: E402  (bench/, beside this file)

GO_LAYERS = ("go_raw", "go_syscall")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30, help="Go and C repetitions")
    parser.add_argument("--iterations", type=int, default=200_000, help="calls per repetition")
    parser.add_argument("--perf-runs", type=int, default=5, help="perf bench runs (10M calls each)")
    args = parser.parse_args(argv)

    from sysops.native import loop_ns
    from sysops.native.golang import GoServer, go_version

    perf = shutil.which("perf")
    benchmark = None
    if perf is None:
        print("perf is not installed (Debian: apt-get install linux-perf): Go against C only.")
    else:
        benchmark = next((b for b in PERF_BENCHMARKS if perf_ns_per_call(perf, b)), None)

    per_call: dict[str, list[float]] = {"native": [], **{layer: [] for layer in GO_LAYERS}}
    perf_runs: list[float] = []
    with GoServer() as go:
        # Warm-up: page in the loops, settle the frequency.
        for layer in GO_LAYERS:
            go.loop_ns(layer, "getppid", args.iterations)
        loop_ns("getppid", args.iterations)
        rounds = max(args.reps, args.perf_runs if benchmark else 0)
        for index in range(rounds):
            if index < args.reps:
                for layer in GO_LAYERS:
                    ns = go.loop_ns(layer, "getppid", args.iterations)
                    per_call[layer].append(ns / args.iterations)
                per_call["native"].append(loop_ns("getppid", args.iterations) / args.iterations)
            # perf's runs spread over the rounds: one every reps / perf_runs rounds.
            if (
                benchmark
                and len(perf_runs) < args.perf_runs
                and (index % max(1, args.reps // args.perf_runs) == 0)
            ):
                value = perf_ns_per_call(perf, benchmark)
                if value is None:
                    print(f"error: perf bench syscall {benchmark} stopped working mid-run")
                    return 1
                perf_runs.append(value)

    median = {name: statistics.median(values) for name, values in per_call.items()}
    print(f"{go_version()}, GOMAXPROCS=1; {args.reps} reps x {args.iterations:,} getppid calls")
    for name in (*GO_LAYERS, "native"):
        values = per_call[name]
        print(
            f"  {name:<11} median {median[name]:7.1f} ns/call "
            f"(min {min(values):.1f}, max {max(values):.1f})"
        )
    if perf_runs:
        median["perf"] = statistics.median(perf_runs)
        print(f"  perf bench syscall {benchmark}: median {median['perf']:.1f} ns/call")
        print(f"    {len(perf_runs)} runs: {', '.join(f'{v:.1f}' for v in perf_runs)}")
    print(f"ratio go_raw / native:     {median['go_raw'] / median['native']:.3f}")
    print(f"ratio go_syscall / go_raw: {median['go_syscall'] / median['go_raw']:.3f}")
    if perf_runs:
        print(f"ratio go_raw / perf:       {median['go_raw'] / median['perf']:.3f}")
        print(f"ratio native / perf:       {median['native'] / median['perf']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
