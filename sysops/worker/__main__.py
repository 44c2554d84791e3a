"""Sandbox-side entry point: ``python3 -S -P -B -m sysops.worker``, a JSON job on stdin.

The job is ``{"probe": "sysops.experiments.<name>.probe", "params": {...}, "events_fd": 3}``.
The worker imports no Django, reads no settings and sees no secrets: everything it knows arrives
in the job. It speaks only the event protocol (``sysops.worker.emit``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import sys
import time
import traceback

from sysops.worker.emit import Emitter
from sysops.worker.fingerprint import fingerprint
from sysops.worker.markers import mark_begin, mark_end, mark_imports

PROBE_MODULE = re.compile(r"^sysops\.experiments\.[a-z_][a-z0-9_]*\.probe$")


# Modules most probes import (measured: ~150 ms of a small run's start on a loaded 2-core
# host). Imported before the job arrives, so a worker started ahead of its run (a spare
# runner's) has them ready; none does anything on import.
PRELOADED = (
    "ctypes",
    "sysops.worker.toolkit.params",
    "sysops.worker.toolkit.rows",
    "sysops.worker.toolkit.stats",
    "sysops.worker.toolkit.timing",
    "sysops.worker.toolkit.sweep",
    "sysops.worker.toolkit.harness",
    "sysops.worker.toolkit.hostfacts",
    "sysops.worker.toolkit.faults",
    "sysops.worker.toolkit.libc",
    "sysops.worker.toolkit.sockets",
)
# The C extensions the probes call, loaded ahead as well (a dlopen each) when they are built: a
# probe without them says so itself (sysops.native.load).
PRELOADED_IF_BUILT = tuple(
    f"sysops.native.{name}"
    for name in ("_native", "_errno", "_fileio", "_iomux", "_mem", "_net", "_spawn", "_boundary")
)


def main() -> int:
    # Before the job: a worker started ahead of its run (a spare runner's) has these ready.
    for module in PRELOADED:
        importlib.import_module(module)
    for module in PRELOADED_IF_BUILT:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    host = fingerprint()
    job = json.loads(sys.stdin.read())
    emitter = Emitter(int(job["events_fd"]))
    emitter.hello(host)
    probe = job["probe"]
    if not PROBE_MODULE.match(probe):
        emitter.error(f"refusing to load {probe!r}: not an experiment probe")
        return 2
    try:
        run = importlib.import_module(probe).run
        mark_imports()  # a probe's lazy imports are the interpreter's work, not the experiment's
        # The experiment's own work, bracketed for the tracer and timed for the observer effect.
        start_ns = time.perf_counter_ns()
        mark_begin()
        try:
            run(job["params"], emitter)
        finally:
            mark_end()
        work_ns = time.perf_counter_ns() - start_ns
    except Exception as exc:  # noqa: BLE001 - every failure becomes a readable run error
        last = traceback.extract_tb(exc.__traceback__)[-1]
        emitter.error(f"{type(exc).__name__}: {exc} (at {last.filename}:{last.lineno})")
        return 1
    emitter.done(work_ns=work_ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
