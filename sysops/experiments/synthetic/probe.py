"""Test and benchmark probe: emits a known number of samples as fast as it can, or one every
``interval_ms``."""

from __future__ import annotations

import time
from typing import Any

from sysops.worker.emit import Emitter


def run(params: dict[str, Any], emit: Emitter) -> None:
    count = int(params["samples"])
    interval_s = min(1000, max(0, int(params.get("interval_ms") or 0))) / 1000
    step = max(1, count // 20)
    for i in range(count):
        emit.sample("synthetic", i, i % 97)
        if interval_s:
            time.sleep(interval_s)
        if i % step == 0:
            emit.progress(i / count, f"{i}/{count} samples")
    emit.result([{"metric": "samples emitted", "value": count, "unit": "samples", "note": ""}])
