"""Parsing the worker's NDJSON event stream. A bad line becomes an error value, never a crash."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

EVENT_TYPES = frozenset({"hello", "phase", "progress", "sample", "result", "log", "error", "done"})
MAX_LINE_BYTES = 1 << 20


@dataclass(frozen=True)
class BadLine:
    reason: str
    excerpt: str


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_line(line: bytes) -> dict[str, Any] | BadLine:
    excerpt = line[:200].decode("utf-8", "replace")
    if len(line) > MAX_LINE_BYTES:
        return BadLine(f"event line of {len(line)} bytes is over the {MAX_LINE_BYTES} cap", excerpt)
    try:
        event = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        return BadLine(f"malformed event ({exc})", excerpt)
    if not isinstance(event, dict):
        return BadLine("event is not a JSON object", excerpt)
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        return BadLine(f"unknown event type {kind!r}", excerpt)
    if kind == "sample" and not (
        isinstance(event.get("series"), str) and _finite(event.get("x")) and _finite(event.get("y"))
    ):
        return BadLine("sample needs a series name and finite x and y", excerpt)
    if kind == "progress" and not _finite(event.get("value")):
        return BadLine("progress needs a finite value", excerpt)
    if kind == "result" and not isinstance(event.get("rows"), list):
        return BadLine("result needs a list of rows", excerpt)
    if kind == "hello" and not isinstance(event.get("host"), dict):
        return BadLine("hello needs a host object", excerpt)
    return event


class LineSplitter:
    """Splits a byte stream into lines; a line longer than the cap is cut and reported."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        *lines, rest = self._buf.split(b"\n")
        self._buf = bytearray(rest)
        if len(self._buf) > MAX_LINE_BYTES:
            lines.append(bytes(self._buf))
            self._buf.clear()
        return [bytes(line) for line in lines if line.strip()]

    def close(self) -> list[bytes]:
        rest, self._buf = bytes(self._buf), bytearray()
        return [rest] if rest.strip() else []
