"""What the sandbox's own seccomp filter adds to every syscall on this host.

Every figure measured inside the sandbox includes it, so the dashboard states it. Measured
outside the sandbox: a forked child times getppid in the native C loop, installs exactly the
program bubblewrap loads (seccomp_program()) and times it again. Fastest repetition against
fastest, as for any short loop on a shared machine.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sysops.sandbox.seccomp import seccomp_program
from sysops.worker.toolkit import bpf
from sysops.worker.toolkit.harness import Child

ITERATIONS = 100_000
REPETITIONS = 7
WARMUP_REPETITIONS = 2


@dataclass(frozen=True)
class FilterCost:
    instructions: int
    unfiltered_ns: float  # getppid per call, fastest repetition
    filtered_ns: float

    @property
    def added_ns(self) -> float:
        return self.filtered_ns - self.unfiltered_ns


def measure(iterations: int = ITERATIONS, repetitions: int = REPETITIONS) -> FilterCost:
    from sysops.native import loop_ns  # the built extension, loaded on first use

    program = seccomp_program()

    def per_call() -> float:
        return loop_ns("getppid", iterations) / iterations

    def work() -> dict[str, float]:
        for _ in range(WARMUP_REPETITIONS):
            per_call()
        before = min(per_call() for _ in range(repetitions))
        bpf.install(program)
        per_call()
        after = min(per_call() for _ in range(repetitions))
        return {"before": before, "after": after}

    result = Child.run(work, name="filter cost probe")
    return FilterCost(bpf.length(program), result["before"], result["after"])


@functools.cache
def cached_filter_cost() -> FilterCost | None:
    """measure() once per process; None where it cannot be measured (no extension, no
    seccomp), which the dashboard says."""
    try:
        return measure()
    except (ImportError, OSError, RuntimeError):
        return None
