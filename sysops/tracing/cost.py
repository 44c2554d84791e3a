"""What one traced call costs on this host, for the form's estimate and the run page's ETA.

Measured once per host and kept in ``VAR_DIR/trace-cost.json``: a calibration (a Python loop of
getppid calls under strace with the tracer's own flags, pinned to one CPU like the tracer, minus
the same loop untraced), then refined by what traced runs observe (their observer effect per
event, from runs with enough events to mean something). The estimate is the median of the
recent observations, or the calibration until there are some.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from sysops.tracing.render import duration_text

STRACE = "/usr/bin/strace"
TASKSET = "/usr/bin/taskset"
PYTHON = "/usr/bin/python3"
COST_FILE_NAME = "trace-cost.json"
CALIBRATION_CALLS = 10_000
CALIBRATION_TIMEOUT_S = 30.0
# A traced run's observed cost counts only above this many events: fewer are mostly noise.
MIN_OBSERVED_EVENTS = 1_000
KEPT_OBSERVATIONS = 9
_LOOP = (
    "import os, time\n"
    "t = time.perf_counter_ns()\n"
    "for _ in range({n}): os.getppid()\n"
    "print(time.perf_counter_ns() - t)\n"
)


@dataclass(frozen=True)
class PerEventCost:
    us: float
    source: str  # "calibration" or "traced runs"
    samples: int


def _path() -> Path:
    return Path(settings.VAR_DIR) / COST_FILE_NAME


def _load() -> dict:
    try:
        data = json.loads(_path().read_text())
    except (OSError, ValueError):
        return {}
    # A var dir copied to another machine says nothing about this one.
    return data if isinstance(data, dict) and data.get("host") == socket.gethostname() else {}


def _save(data: dict) -> None:
    path = _path()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".trace-cost-")
    with os.fdopen(fd, "w") as out:
        json.dump({**data, "host": socket.gethostname()}, out)
    os.replace(tmp, path)


def per_event_cost() -> PerEventCost | None:
    """This host's cost per traced call (µs), calibrating once if nothing is known yet; None
    when strace cannot run here."""
    data = _load()
    observed = [float(v) for v in data.get("observed_us", [])]
    if observed:
        return PerEventCost(statistics.median(observed), "traced runs", len(observed))
    if "calibration_us" not in data:
        us = calibrate()
        if us is None:
            return None
        data["calibration_us"] = us
        data["calibrated_at"] = time.time()
        _save(data)
    return PerEventCost(float(data["calibration_us"]), "calibration", 1)


def record(per_event_us: float | None, events: int) -> None:
    """A traced run's observed cost per event (its observer effect)."""
    if per_event_us is None or per_event_us <= 0 or events < MIN_OBSERVED_EVENTS:
        return
    data = _load()
    data["observed_us"] = [*data.get("observed_us", []), per_event_us][-KEPT_OBSERVATIONS:]
    # An estimate is a nicety: a read-only var dir must not fail a run.
    with contextlib.suppress(OSError):
        _save(data)


def calibrate(calls: int = CALIBRATION_CALLS) -> float | None:
    """µs per traced getppid under strace -f -ttt -T -yy on one CPU, against the same loop
    untraced; None when strace or the interpreter cannot run."""
    cpu = str(min(os.sched_getaffinity(0)))
    pin = [TASKSET, "--cpu-list", cpu] if os.path.exists(TASKSET) else []
    strace = [STRACE, "-f", "-ttt", "-T", "-yy", "-s", "64", "-o", "/dev/null"]
    try:
        bare_ns = _loop_ns([*pin], calls)
        traced_ns = _loop_ns([*pin, *strace], calls)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return max(0.0, (traced_ns - bare_ns) / calls / 1e3)


def _loop_ns(prefix: list[str], calls: int) -> int:
    done = subprocess.run(
        [*prefix, PYTHON, "-S", "-c", _LOOP.format(n=calls)],
        capture_output=True,
        text=True,
        check=True,
        timeout=CALIBRATION_TIMEOUT_S,
    )
    return int(done.stdout.split()[-1])


def estimate_text(calls: int | None, trace_set: str, cost: PerEventCost | None) -> str:
    """The sentence next to the form's trace field."""
    if cost is None:
        return "No estimate: strace does not run on this host."
    if calls is None:
        return (
            f"A traced call costs about {cost.us:.0f} µs here; this experiment does not say "
            "how many calls its work makes."
        )
    seconds = calls * cost.us / 1e6
    bound = "at most " if trace_set else ""
    return (
        f"A full trace stops the worker on {bound}{calls:,} calls: about "
        f"{duration_text(seconds)} on top of the work, at {cost.us:.0f} µs per traced call on this "
        f"host ({'measured by' if cost.source == 'traced runs' else 'from a'} {cost.source}). "
        "A sampled trace traces a short sample only."
    )
