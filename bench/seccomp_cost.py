"""What a seccomp filter costs per syscall on this host: ns per instruction of a linear filter,
and what the sandbox's own filter adds to every syscall measured inside it.

Outside the sandbox, so the baseline has no filter at all: for each length a forked child times
getppid in the native C loop, installs a linear chain (which tests an argument first, so the
kernel's constant-action bitmap cannot skip it; and once more without that test, so it can), and
times it again. Fastest repetition against fastest. Run from the repository root:

    .venv/bin/python bench/seccomp_cost.py [--iterations 200000] [--reps 9]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sysops.experiments.seccomp_cost import probe  # noqa: E402
from sysops.sandbox.filter_cost import measure  # noqa: E402
from sysops.worker.toolkit import bpf  # noqa: E402
from sysops.worker.toolkit.harness import Child  # noqa: E402
from sysops.worker.toolkit.sweep import fit_line  # noqa: E402

LENGTHS = (16, 64, 256, 512, 1000)


def added_ns(length: int, iterations: int, reps: int, *, defeat_cache: bool) -> tuple[int, float]:
    program = probe.build(
        "linear", length, "getppid", platform.machine(), defeat_cache=defeat_cache
    )
    result = Child.run(
        lambda: probe._measure_in_child(program, "getppid", iterations, reps), name="bench child"
    )
    return bpf.length(program), result["added_ns"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()

    for defeat_cache in (True, False):
        points = [
            added_ns(n, args.iterations, args.reps, defeat_cache=defeat_cache) for n in LENGTHS
        ]
        fit = fit_line([x for x, _ in points], [y for _, y in points])
        label = (
            "argument tested first (bitmap defeated)"
            if defeat_cache
            else "syscall numbers only (bitmap)"
        )
        print(f"linear filter, {label}:")
        for length, added in points:
            print(f"  {length:5d} instructions: {added:+8.1f} ns per getppid")
        print(f"  slope {fit.slope:.3f} ns per instruction, intercept {fit.intercept:+.1f} ns")

    cost = measure(args.iterations, args.reps)
    print(
        f"sandbox filter ({cost.instructions} instructions): getppid {cost.unfiltered_ns:.1f} -> "
        f"{cost.filtered_ns:.1f} ns, +{cost.added_ns:.1f} ns per call "
        f"(x{cost.filtered_ns / cost.unfiltered_ns:.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
