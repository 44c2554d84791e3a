"""Searching a stored trace: which events match a query, and which chunks cannot.

A run's events are stored a batch at a time (``TraceChunk``). Each chunk also stores a small
index of what it holds (:func:`chunk_index`: its names, categories and pids, whether a call
failed, its first and last time), computed when the batch is written, so that a search over a
million events decompresses only the chunks that may hold a match (:meth:`TraceQuery.may_match`).
The text filter reads the line as the pane renders it (``render.call_text``), so what you find is
what you see.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from sysops.tracing.parse import TraceEvent
from sysops.tracing.render import as_event, call_text

TEXT_MAX_CHARS = 200
# Runs of these characters never straddle two fields of a rendered line (call_text puts
# punctuation or spaces between fields) and JSON stores them unescaped; a run with a letter or a
# slash is not one of the numbers call_text formats itself (a duration, an exit status). So
# such a run of a text query appears verbatim in the stored JSON of any event that matches...
_VERBATIM_RUN = re.compile(r"[A-Za-z0-9_/]*[A-Za-z_/][A-Za-z0-9_/]*")
# Where each stored event begins: pack writes each as a compact object whose first key is
# "seq"; inside a JSON string a quote is escaped, so this never matches within a value.
_EVENT_START = b'{"seq":'
# ...unless the run comes from call_text's own words rather than from a field.
_RENDERER_WORDS = "<unfinished ...> +++ exited with +++ killed by (core dumped) stopped by ---"


def failed(event: Mapping[str, Any]) -> bool:
    """What the pane marks as failed: a call with an errno, or one cut short."""
    return bool(event.get("errno")) or bool(event.get("cut_short"))


def chunk_index(events: Iterable[TraceEvent]) -> dict[str, Any]:
    """What a chunk holds, in a few hundred bytes: sets are small (a trace has tens of
    distinct names and pids), and one pass of attribute reads costs far less than packing."""
    names: set[str] = set()
    categories: set[str] = set()
    pids: set[int] = set()
    has_failed = has_cut_short = False
    ts_min, ts_max = math.inf, -math.inf
    for event in events:
        names.add(event.name)
        categories.add(event.category)
        if event.pid is not None:
            pids.add(event.pid)
        if event.errno or event.cut_short:
            has_failed = True
            has_cut_short = has_cut_short or event.cut_short
        ts = event.ts
        if ts is not None:
            if ts < ts_min:
                ts_min = ts
            if ts > ts_max:
                ts_max = ts
    return {
        "names": sorted(names),
        "categories": sorted(categories),
        "pids": sorted(pids),
        "failed": has_failed,
        "cut_short": has_cut_short,
        "ts": [ts_min, ts_max] if ts_min <= ts_max else None,
    }


@dataclass(frozen=True)
class TraceQuery:
    """Filters that must all hold; an empty field matches everything.

    ``name`` is a substring of the syscall name (the pane's name box), ``syscall`` an exact name
    (a row of the summary), ``text`` a substring of the rendered call; ``ts_from``/``ts_to``
    bound the call's start time, in the trace's own seconds."""

    name: str = ""
    syscall: str = ""
    category: str = ""
    pid: int | None = None
    failed: bool = False
    text: str = ""
    ts_from: float | None = None
    ts_to: float | None = None
    # Whether calls the worker made for itself (stored with "harness": true) are included.
    harness: bool = False
    # The longest verbatim run of ``text`` (see _VERBATIM_RUN), "" when it has none.
    _needle: str = field(init=False, default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        runs = [
            r for r in _VERBATIM_RUN.findall(self.text) if len(r) >= 3 and r not in _RENDERER_WORDS
        ]
        object.__setattr__(self, "_needle", max(runs, key=len, default=""))

    def candidates(
        self, stored_json: bytes, count: int, index: Mapping[str, Any] | None = None
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(position, event)`` for each event of a chunk's stored JSON that may match, in
        order: every event, or, when the query implies a piece of text its JSON must hold,
        only the events holding it, found by substring search and decoded one by one. A rare
        call costs a scan of the bytes instead of decoding thousands of events."""
        mark = self._stored_mark(index)
        if mark is None or stored_json.count(_EVENT_START) != count:
            # Nothing to look for, or not the layout pack writes: decode it all.
            yield from enumerate(orjson.loads(stored_json))
            return
        position, counted_to = -1, 0
        at = stored_json.find(mark)
        while at != -1:
            start = stored_json.rfind(_EVENT_START, 0, at)
            position += stored_json.count(_EVENT_START, counted_to, start + len(_EVENT_START))
            counted_to = start + 1
            end = stored_json.find(_EVENT_START, at)
            # Each event but the last is followed by a comma, the last by the list's "]".
            yield position, orjson.loads(stored_json[start : end - 1 if end != -1 else -1])
            if end == -1:
                return
            at = stored_json.find(mark, end)

    def _stored_mark(self, index: Mapping[str, Any] | None) -> bytes | None:
        """A piece of text every matching event's stored JSON holds (pack writes compact JSON
        in UTF-8), the most telling one; None when the query implies none."""
        if self.syscall:
            return _compact_pair("name", self.syscall)
        if self._needle:
            return self._needle.encode()
        if self.failed and index and index.get("cut_short") is False:
            return b'"errno":"'  # a failed call has an errno unless it was cut short
        if self.pid is not None:
            return f'"pid":{self.pid},'.encode()
        if self.category:
            return _compact_pair("category", self.category)
        return None

    def may_match(self, index: Mapping[str, Any] | None) -> bool:
        """False only when the chunk's index proves that none of its events match."""
        if not index:
            return True  # a chunk stored before indexes existed
        if self.syscall and self.syscall not in index["names"]:
            return False
        if self.name and not any(self.name in n for n in index["names"]):
            return False
        if self.category and self.category not in index["categories"]:
            return False
        if self.pid is not None and self.pid not in index["pids"]:
            return False
        if self.failed and not index["failed"]:
            return False
        if self.ts_from is not None or self.ts_to is not None:
            span = index["ts"]
            if span is None:
                return False
            if self.ts_from is not None and span[1] < self.ts_from:
                return False
            if self.ts_to is not None and span[0] > self.ts_to:
                return False
        return True

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether one stored event (``render.stored_record`` form) matches."""
        if not self.harness and event.get("harness"):
            return False
        if self.syscall and event.get("name") != self.syscall:
            return False
        if self.name and self.name not in (event.get("name") or ""):
            return False
        if self.category and event.get("category") != self.category:
            return False
        if self.pid is not None and event.get("pid") != self.pid:
            return False
        if self.failed and not failed(event):
            return False
        if self.ts_from is not None or self.ts_to is not None:
            ts = event.get("ts")
            if ts is None:
                return False
            if self.ts_from is not None and ts < self.ts_from:
                return False
            if self.ts_to is not None and ts > self.ts_to:
                return False
        if not self.text:
            return True
        needle = self._needle
        if needle and not (
            needle in (event.get("name") or "")
            or needle in (event.get("ret") or "")
            or any(needle in arg for arg in event.get("args") or ())
        ):
            return False
        # Last: rendering the line is the one costly check.
        return self.text in call_text(as_event(event))


def _compact_pair(key: str, value: str) -> bytes:
    """``"key":"value"`` as pack writes it."""
    return orjson.dumps({key: value})[1:-1]
