"""Test and benchmark probe: emits a known number of samples as fast as it can."""

from __future__ import annotations

from typing import Any

from sysops.worker.emit import Emitter


def run(params: dict[str, Any], emit: Emitter) -> None:
    count = int(params["samples"])
    step = max(1, count // 20)
    for i in range(count):
        emit.sample("synthetic", i, i % 97)
        if i % step == 0:
            emit.progress(i / count, f"{i}/{count} samples")
    emit.result([{"metric": "samples emitted", "value": count, "unit": "samples", "note": ""}])
