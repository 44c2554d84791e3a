"""The worker's half of the event protocol: NDJSON lines on a dedicated file descriptor.

Sandbox side: imports nothing from Django and nothing outside the standard library.
Every event is one JSON object on one line: ``{"t": <monotonic ns>, "type": ..., ...}``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any


class Emitter:
    """Writes protocol events to ``fd``. One ``os.write`` per event keeps lines whole."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @property
    def fd(self) -> int:
        """The events fd, for a child program that speaks the protocol itself (the Go program):
        it writes whole lines while the probe waits for it, so lines never interleave."""
        return self._fd

    def emit(self, type_: str, **fields: Any) -> None:
        event = {"t": time.monotonic_ns(), "type": type_, **fields}
        data = (json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def hello(self, fingerprint: Mapping[str, Any]) -> None:
        self.emit("hello", host=dict(fingerprint))

    def phase(self, name: str) -> None:
        self.emit("phase", name=name)

    def progress(self, fraction: float, message: str = "") -> None:
        self.emit("progress", value=min(1.0, max(0.0, float(fraction))), message=message)

    def sample(self, series: str, x: float, y: float) -> None:
        self.emit("sample", series=series, x=x, y=y)

    def result(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Result rows: ``{"metric", "value", "unit", "note"}`` and, for timings, ``"dist"``:
        ``{"n", "min", "median", "p99", "max"}`` plus ``"layer"`` when a layer was measured."""
        self.emit("result", rows=[dict(row) for row in rows])

    def log(self, message: str, level: str = "info") -> None:
        self.emit("log", level=level, message=message)

    def error(self, message: str) -> None:
        self.emit("error", message=message)

    def done(self, work_ns: int | None = None) -> None:
        """The probe finished; ``work_ns`` is how long its own work took (observer effect)."""
        self.emit("done", **({} if work_ns is None else {"work_ns": work_ns}))
