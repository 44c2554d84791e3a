"""Parsing and validating the worker's NDJSON event stream, in one place, before anything of it is
stored. A line that does not fit its event's schema becomes an error value, never a crash, and
what passes is shaped so that every page can render it.

The worker runs hostile or buggy code: its events are checked for types, sizes and known keys.
Result rows may carry fields beyond the contract's (experiments add their own, such as
``detail``), as bounded plain JSON that no shared template reads.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EVENT_TYPES = frozenset({"hello", "phase", "progress", "sample", "result", "log", "error", "done"})
MAX_LINE_BYTES = 1 << 20
EXCERPT_CHARS = 200
NAME_MAX_CHARS = 200  # metric, series, phase, unit, layer
TEXT_MAX_CHARS = 4000  # messages, notes and other text
PLAIN_JSON_MAX_DEPTH = 8  # an extra field of a result row: a value, a list, a dict of lists…
PLAIN_JSON_MAX_ITEMS = 4096  # per list or dict (a packet's bytes, say)
ROWS_MAX_PER_EVENT = 1000
ROW_MAX_BYTES = 64 << 10  # a row with a panel's detail (a decoded packet) stays well under
ROW_EXTRA_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
LOG_LEVELS = ("info", "warning", "error")
INT_LIMIT = 1 << 63


class Invalid(ValueError):
    """Why an event does not fit its schema."""


@dataclass(frozen=True)
class BadLine:
    reason: str
    excerpt: str


def parse_line(line: bytes) -> dict[str, Any] | BadLine:
    """One NDJSON line -> a validated event with only known keys, or BadLine saying why not."""
    excerpt = line[:EXCERPT_CHARS].decode("utf-8", "replace")
    if len(line) > MAX_LINE_BYTES:
        return BadLine(f"event line of {len(line)} bytes is over the {MAX_LINE_BYTES} cap", excerpt)
    try:
        event = json.loads(line)
    except RecursionError:
        return BadLine("malformed event (nested too deeply)", excerpt)
    except (UnicodeDecodeError, ValueError) as exc:
        return BadLine(f"malformed event ({exc})", excerpt)
    if not isinstance(event, dict):
        return BadLine("event is not a JSON object", excerpt)
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        return BadLine(f"unknown event type {_short(kind)}", excerpt)
    try:
        fields = _SCHEMAS[kind](event)
    except Invalid as exc:
        return BadLine(f"bad {kind} event: {exc}", excerpt)
    except RecursionError:
        return BadLine(f"bad {kind} event: nested too deeply", excerpt)
    return {**({"t": event["t"]} if "t" in event else {}), "type": kind, **fields}


# --- one function per event type: the event's fields, checked and shaped ------------------------


def _hello(event: dict[str, Any]) -> dict[str, Any]:
    _keys(event, {"host"})
    return {"host": _host(_field(event, "host", dict))}


def _phase(event: dict[str, Any]) -> dict[str, Any]:
    _keys(event, {"name"})
    return {"name": _text(event.get("name", ""), "name", NAME_MAX_CHARS)}


def _progress(event: dict[str, Any]) -> dict[str, Any]:
    _keys(event, {"value", "message"})
    value = _number(event.get("value"), "value")
    return {
        "value": min(1.0, max(0.0, float(value))),
        "message": _text(event.get("message", ""), "message", NAME_MAX_CHARS),
    }


def _sample(event: dict[str, Any]) -> dict[str, Any]:
    _keys(event, {"series", "x", "y"})
    return {
        "series": _text(_field(event, "series", str), "series", NAME_MAX_CHARS),
        "x": _number(event.get("x"), "x"),
        "y": _number(event.get("y"), "y"),
    }


def _result(event: dict[str, Any]) -> dict[str, Any]:
    """The rows that fit the schema, and why each other one did not (``rejected``): one bad row
    must not cost the run its whole table."""
    _keys(event, {"rows"})
    rows = _field(event, "rows", list)
    if len(rows) > ROWS_MAX_PER_EVENT:
        raise Invalid(f"{len(rows)} rows in one event (at most {ROWS_MAX_PER_EVENT})")
    good, rejected = [], []
    for i, row in enumerate(rows):
        try:
            good.append(_row(row, i))
        except Invalid as exc:
            rejected.append(str(exc))
    return {"rows": good, "rejected": rejected}


def _log(event: dict[str, Any]) -> dict[str, Any]:
    _keys(event, {"message", "level"})
    level = event.get("level", "info")
    return {
        "message": _text(event.get("message", ""), "message", TEXT_MAX_CHARS, cut=True),
        "level": level if level in LOG_LEVELS else "info",
    }


def _error(event: dict[str, Any]) -> dict[str, Any]:
    _keys(event, {"message"})
    return {"message": _text(event.get("message", ""), "message", TEXT_MAX_CHARS, cut=True)}


def _done(event: dict[str, Any]) -> dict[str, Any]:
    _keys(event, {"work_ns"})
    if "work_ns" not in event:
        return {}
    work_ns = event["work_ns"]
    if not _is_int(work_ns) or work_ns < 0:
        raise Invalid("work_ns must be a non-negative integer")
    return {"work_ns": work_ns}


_SCHEMAS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "hello": _hello,
    "phase": _phase,
    "progress": _progress,
    "sample": _sample,
    "result": _result,
    "log": _log,
    "error": _error,
    "done": _done,
}

# --- the host fingerprint: every key present, each of its type or None --------------------------

HOST_FIELDS: dict[str, Any] = {
    "kernel": {"release": str, "version": str},
    "machine": str,
    "cpu_model": str,
    "cores": {"online": int, "usable": int},
    "mitigations": "str map",
    "clocksource": str,
    "clocksources_available": "str list",
    "governor": str,
    "virtualisation": {"kind": str, "evidence": "str list"},
    "python": {"version": str, "implementation": str, "executable": str},
    "hostname": str,
}


def _host(host: dict[str, Any]) -> dict[str, Any]:
    return _shaped(host, HOST_FIELDS, "host")


def _shaped(value: dict[str, Any], fields: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = set(value) - set(fields)
    if unknown:
        raise Invalid(f"{where} has unknown keys {', '.join(sorted(map(_short, unknown)))}")
    return {name: _typed(value.get(name), kind, f"{where}.{name}") for name, kind in fields.items()}


def _typed(value: Any, kind: Any, where: str) -> Any:
    if isinstance(kind, dict):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise Invalid(f"{where} must be an object")
        return _shaped(value, kind, where)
    if value is None:
        return None
    if kind is str:
        return _text(value, where, TEXT_MAX_CHARS)
    if kind is int:
        if not _is_int(value):
            raise Invalid(f"{where} must be an integer")
        return value
    if kind == "str list":
        if not isinstance(value, list) or len(value) > PLAIN_JSON_MAX_ITEMS:
            raise Invalid(f"{where} must be a list of at most {PLAIN_JSON_MAX_ITEMS} strings")
        return [_text(item, where, NAME_MAX_CHARS) for item in value]
    if kind == "str map":
        if not isinstance(value, dict) or len(value) > PLAIN_JSON_MAX_ITEMS:
            raise Invalid(f"{where} must be an object of at most {PLAIN_JSON_MAX_ITEMS} strings")
        return {
            _text(k, where, NAME_MAX_CHARS): _text(v, f"{where}.{_short(k)}", TEXT_MAX_CHARS)
            for k, v in value.items()
        }
    raise AssertionError(kind)


# --- result rows: the contract's fields typed, anything else bounded plain JSON ------------------

DIST_MAX_KEYS = 16


def _row(row: Any, index: int) -> dict[str, Any]:
    where = f"row {index}"
    if not isinstance(row, dict):
        raise Invalid(f"{where} is not an object")
    out: dict[str, Any] = {
        "metric": _text(_field(row, "metric", str, where), f"{where} metric", NAME_MAX_CHARS),
        "value": _plain(row.get("value"), f"{where} value"),
        "unit": _text(row.get("unit", ""), f"{where} unit", NAME_MAX_CHARS),
        "note": _text(row.get("note", ""), f"{where} note", TEXT_MAX_CHARS),
    }
    if row.get("dist") is not None:
        out["dist"] = _dist(row["dist"], f"{where} dist")
    if row.get("layer") is not None:
        out["layer"] = _text(row["layer"], f"{where} layer", NAME_MAX_CHARS)
    if row.get("ratio_to_native") is not None:
        out["ratio_to_native"] = _number(row["ratio_to_native"], f"{where} ratio_to_native")
    for key, value in row.items():
        if key in out or key in ("dist", "layer", "ratio_to_native"):
            continue
        if not isinstance(key, str) or not ROW_EXTRA_KEY.match(key):
            raise Invalid(f"{where} has a key that is not a lower-case name: {_short(key)}")
        out[key] = _plain(value, f"{where} {key}")
    if len(json.dumps(out)) > ROW_MAX_BYTES:
        raise Invalid(f"{where} is over {ROW_MAX_BYTES} bytes")
    return out


def _dist(dist: Any, where: str) -> dict[str, float | int | None]:
    if not isinstance(dist, dict) or len(dist) > DIST_MAX_KEYS:
        raise Invalid(f"{where} must be an object of at most {DIST_MAX_KEYS} numbers")
    return {
        _text(key, where, NAME_MAX_CHARS): None if v is None else _number(v, f"{where} {key}")
        for key, v in dist.items()
    }


def _plain(value: Any, where: str, depth: int = 0) -> Any:
    """Plain JSON of bounded depth and breadth: what an experiment's own fields may hold."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _number(value, where)
    if isinstance(value, str):
        return _text(value, where, TEXT_MAX_CHARS)
    if depth >= PLAIN_JSON_MAX_DEPTH:
        raise Invalid(f"{where} is nested more than {PLAIN_JSON_MAX_DEPTH} deep")
    if isinstance(value, list | dict) and len(value) > PLAIN_JSON_MAX_ITEMS:
        raise Invalid(f"{where} has more than {PLAIN_JSON_MAX_ITEMS} items")
    if isinstance(value, list):
        return [_plain(item, where, depth + 1) for item in value]
    if isinstance(value, dict):
        return {
            _text(k, where, NAME_MAX_CHARS): _plain(v, where, depth + 1) for k, v in value.items()
        }
    raise Invalid(f"{where} is not JSON")


# --- small checks -------------------------------------------------------------------------------


def _keys(event: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(event) - allowed - {"t", "type"}
    if unknown:
        raise Invalid(f"unknown keys {', '.join(sorted(map(_short, unknown)))}")
    if "t" in event:
        _number(event["t"], "t")


def _field(mapping: dict[str, Any], name: str, kind: type, where: str = "") -> Any:
    value = mapping.get(name)
    if not isinstance(value, kind):
        label = f"{where} {name}".strip()
        raise Invalid(f"{label} must be {'an object' if kind is dict else f'a {kind.__name__}'}")
    return value


def _text(value: Any, where: str, max_chars: int, *, cut: bool = False) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{where} must be a string")
    if len(value) > max_chars:
        if not cut:
            raise Invalid(f"{where} is over {max_chars} characters")
        value = value[:max_chars]
    # JSON may carry lone surrogates and NULs, which no database column stores as text.
    if "\0" in value or not value.isascii():
        value = value.replace("\0", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return value


def _number(value: Any, where: str) -> int | float:
    if not (_is_int(value) or isinstance(value, float) and math.isfinite(value)):
        raise Invalid(f"{where} must be a finite number")
    return value


def _is_int(value: Any) -> bool:
    # Within 64 bits: what every database and JSON reader downstream holds exactly.
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < INT_LIMIT


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


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
