"""Test and benchmark probe: emits a known number of samples, as fast as it can or spread over
``duration_s`` (for tests that need a run to last while they break something)."""

from __future__ import annotations

import time
from typing import Any

from sysops.worker.emit import Emitter
from sysops.worker.toolkit import params as checks

MAX_SAMPLES = 2_000_000
MAX_DURATION_S = 30.0


def run(params: dict[str, Any], emit: Emitter) -> None:
    count = checks.bounded_int(params, "samples", 1, MAX_SAMPLES)
    duration_s = checks.bounded_float(params, "duration_s", 0.0, MAX_DURATION_S, default=0.0)
    step = max(1, count // 20)
    start = time.monotonic()
    for i in range(count):
        if duration_s:
            # Paced by the clock, not by sleeps that add up: sample i is due at i/count of it.
            time.sleep(max(0.0, start + duration_s * i / count - time.monotonic()))
        emit.sample("synthetic", i, i % 97)
        if i % step == 0:
            emit.progress(i / count, f"{i}/{count} samples")
    emit.result([{"metric": "samples emitted", "value": count, "unit": "samples", "note": ""}])
