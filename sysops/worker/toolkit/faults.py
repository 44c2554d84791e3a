"""A fault injected by the tracer (``strace -e inject=SYSCALL:error=ERRNO:when=N``), seen from
each layer of a probe: the C loop gets -1 and errno, ctypes gets -1 and reads errno, Python's os
raises OSError. The probe must report what each layer saw, never crash on it.

strace counts ``when=N`` per process, on the calls its filters let through (the runner limits
them to one file with ``-P``). So each layer makes its calls in a fresh child process, whose
count starts at zero: every layer meets the fault at the same call number.

The runner hands the fault to the probe as the ``fault`` parameter of the fault pass only;
the measured pass never has one. Sandbox side: standard library only.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sysops.worker.toolkit.harness import Child
from sysops.worker.toolkit.params import bounded_int
from sysops.worker.toolkit.rows import errno_fields, errno_row

FAULT_PARAM = "fault"
WHEN_MAX = 1_000
# Calls made past the faulted one: they show that a single call failed, not the file.
CALLS_AFTER_FAULT = 2
TRIAL_TIMEOUT_S = 10.0

Call = Callable[[], object]


@dataclass(frozen=True)
class Fault:
    syscall: str
    errno: str
    when: int

    def describe(self) -> str:
        return f"{self.errno} injected by strace into call {self.when} of {self.syscall}"


def fault_of(params: Mapping[str, Any], syscalls: tuple[str, ...]) -> Fault | None:
    """The fault this pass runs under, checked (a probe never trusts its params), or None."""
    raw = params.get(FAULT_PARAM)
    if not raw:
        return None
    if not isinstance(raw, Mapping) or raw.get("syscall") not in syscalls:
        raise ValueError(f"not a fault this probe can meet: {raw!r}")
    name = raw.get("errno")
    if not isinstance(name, str) or not isinstance(getattr(errno, name, None), int):
        raise ValueError(f"not an errno name: {name!r}")
    return Fault(raw["syscall"], name, bounded_int(raw, "when", 1, WHEN_MAX))


def trial(call: Call, calls: int) -> dict[str, Any]:
    """Make ``calls`` calls one at a time: each one's outcome ("ok" or the errno name), and the
    first failure as the layer reported it."""
    outcomes: list[str] = []
    first: dict[str, Any] | None = None
    for number in range(1, calls + 1):
        try:
            call()
        except OSError as exc:
            fields = errno_fields(exc)
            outcomes.append(fields["name"])
            if first is None:
                first = {"call": number, **fields, "raised": f"{type(exc).__name__}: {exc}"}
        else:
            outcomes.append("ok")
    return {"outcomes": outcomes, "first_failure": first}


def layer_trials(layers: Mapping[str, Callable[[], Call]], fault: Fault) -> dict[str, dict]:
    """Each layer's trial in a fresh child: ``layers[name]()`` makes (in the child) the
    function that makes one call through that layer."""
    calls = fault.when + CALLS_AFTER_FAULT
    trials = {}
    for name, make in layers.items():
        trials[name] = Child.run(
            lambda make=make: trial(make(), calls),
            name=f"{name} fault trial",
            timeout_s=TRIAL_TIMEOUT_S,
        )
    return trials


def fault_rows(
    fault: Fault,
    trials: Mapping[str, Mapping[str, Any]],
    labels: Mapping[str, str],
    how: Mapping[str, str],
) -> list[dict[str, Any]]:
    """One row per layer: the errno it saw at the faulted call (0: none), how it saw it, and
    every call's outcome. ``how``: per layer, how that layer reports a failure."""
    rows = []
    for layer, result in trials.items():
        first = result.get("first_failure")
        outcomes = " ".join(result.get("outcomes", []))
        if first is None:
            note = f"no call failed ({outcomes}): the fault was not injected"
        else:
            note = (
                f"at call {first['call']}: {first['raised']}; {how.get(layer, '')} "
                f"Calls: {outcomes}."
            )
        rows.append(
            errno_row(
                f"{labels.get(layer, layer)}, {fault.describe()}",
                first["errno"] if first else 0,
                note,
                layer=layer,
            )
        )
    return rows
