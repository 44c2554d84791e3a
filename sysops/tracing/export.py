"""Trace downloads: strace text, NDJSON, Perfetto (Chrome Trace Event JSON) and summary CSV.

Every exporter is a generator of text chunks of about :data:`CHUNK_CHARS` characters, so that a
200,000-event trace streams (e.g. through Django's StreamingHttpResponse) without ever being one
string in memory, and without one tiny write per event. They accept :class:`TraceEvent` values
or their ``to_dict()`` form, as stored.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sysops.tracing.parse import TraceEvent
from sysops.tracing.render import EventLike, as_event, stored_record, strace_line

CHUNK_CHARS = 64 * 1024
_US_PER_S = 1_000_000
_STRACE_KINDS = ("syscall", "signal", "exit", "killed")


def to_strace_text(events: Iterable[EventLike]) -> Iterator[str]:
    """strace-style lines, ``pid ts name(args) = ret <dur>``; split calls come out whole."""
    return _chunked(map(_strace_piece, _events(events)))


def to_ndjson(events: Iterable[EventLike]) -> Iterator[str]:
    """One JSON object per line, the :meth:`TraceEvent.to_dict` form."""
    return _chunked(map(_ndjson_piece, _events(events)))


def _strace_piece(event: TraceEvent) -> str:
    return strace_line(event) + "\n"


def _ndjson_piece(event: TraceEvent) -> str:
    return json.dumps(event.to_dict(), ensure_ascii=False) + "\n"


def to_perfetto(events: Iterable[EventLike], *, run_label: str = "") -> Iterator[str]:
    """Chrome Trace Event JSON, which ui.perfetto.dev and chrome://tracing open.

    One track per pid; a complete event (``"ph": "X"``) per syscall with its arguments, return
    value and errno; instant events for signals, exits and kills. Timestamps are the trace's
    own (``-ttt``, seconds since the epoch) in microseconds.
    """

    def records() -> Iterator[str]:
        named: set[int] = set()
        for event in _events(events):
            if not _in_perfetto(event):
                continue
            pid = event.pid if event.pid is not None else 0
            if pid not in named:
                named.add(pid)
                label = f"{run_label} pid {pid}".strip()
                yield _json_record(
                    {
                        "name": "process_name",
                        "ph": "M",
                        "pid": pid,
                        "tid": pid,
                        "args": {"name": label},
                    }
                )
            yield _perfetto_piece(event)

    def document() -> Iterator[str]:
        yield '{"displayTimeUnit": "ns", "traceEvents": [\n'
        first = True
        for record in records():
            yield record if first else ",\n" + record
            first = False
        yield "\n]}\n"

    return _chunked(document())


class DownloadSizes:
    """About how many bytes each download will be, known before anyone asks for it: the first
    :data:`EXACT_EVENTS` events are measured one by one, then a random one in
    :data:`SAMPLE_EVERY`, rendered by the exporters' own code, and the sample scaled to the
    rest (Perfetto's per-process records are left out: a few hundred bytes). ``add`` only picks
    the events; ``to_dict`` measures those picked since its last call, a batch per format in one
    encoder call (the runner adds every event of a trace, and per-event encoding was as costly
    as parsing). Measuring is the dear part (~10 µs an event, three encodings): at 5,000 exact
    events and one in 32, it cost a 20,000-call traced run ~3 µs per call."""

    EXACT_EVENTS = 1000
    SAMPLE_EVERY = 64
    FORMATS = ("strace", "ndjson", "perfetto")

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)
        self._seen = 0
        self._sampled = 0
        self._exact = dict.fromkeys(self.FORMATS, 0)
        self._sample = dict.fromkeys(self.FORMATS, 0)
        self._picked_exact: list[TraceEvent] = []
        self._picked_sample: list[TraceEvent] = []
        # The index of the next event sampled past the exact ones.
        self._next_pick = self.EXACT_EVENTS - 1 + self._gap()

    def add(self, events: Sequence[TraceEvent]) -> None:
        """Count a batch of parsed events. Only the picked ones are visited: the gaps between
        picks are drawn (geometric, one in SAMPLE_EVERY on average), not a coin per event."""
        start = self._seen
        self._seen += len(events)
        if start < self.EXACT_EVENTS:
            self._picked_exact += events[: self.EXACT_EVENTS - start]
        while self._next_pick < self._seen:
            self._picked_sample.append(events[self._next_pick - start])
            self._sampled += 1
            self._next_pick += self._gap()

    def _gap(self) -> int:
        """Events from one pick to the next: k >= 1 with probability (1 - p)^(k - 1) p."""
        p = 1 / self.SAMPLE_EVERY
        return int(math.log(1.0 - self._random.random()) / math.log(1.0 - p)) + 1

    def to_dict(self) -> dict[str, int]:
        """``{format: bytes}``."""
        _measure(self._picked_exact, self._exact)
        _measure(self._picked_sample, self._sample)
        self._picked_exact, self._picked_sample = [], []
        rest = self._seen - min(self._seen, self.EXACT_EVENTS)
        scale = rest / self._sampled if self._sampled else 0.0
        return {fmt: self._exact[fmt] + round(self._sample[fmt] * scale) for fmt in self.FORMATS}


def _measure(events: list[TraceEvent], into: dict[str, int]) -> None:
    """Add the bytes each download spends on ``events``, as stored (without the raw line).

    Each format's pieces are rendered as one list: a list's JSON is its items' JSON between
    brackets, joined by a separator of known length, so the items' total follows exactly."""
    if not events:
        return
    count = len(events)
    # The strace line of an unparsed or info event is its raw line, which is not stored.
    into["strace"] += (
        sum(_utf8_len(strace_line(e)) if e.kind in _STRACE_KINDS else 0 for e in events) + count
    )  # one newline each
    # An NDJSON line is the stored record plus '"raw": ""' (, "raw": "" within the object).
    records = [stored_record(e) for e in events]
    listed = json.dumps(records, ensure_ascii=False)
    into["ndjson"] += _utf8_len(listed) - 2 - 2 * (count - 1) + count * (len(', "raw": ""') + 1)
    perfetto = [
        _perfetto_event(e, e.pid if e.pid is not None else 0) for e in events if _in_perfetto(e)
    ]
    if perfetto:
        listed = json.dumps(perfetto, ensure_ascii=False, separators=(",", ":"))
        into["perfetto"] += _utf8_len(listed) - 2 - (len(perfetto) - 1) + 2 * len(perfetto)


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def summary_csv(summary: Mapping[str, Any]) -> Iterator[str]:
    """The stored summary (``Summary.to_dict()``) as CSV: a header, then one row per syscall
    (no total row)."""

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["syscall", "calls", "errors", "total_s", "avg_s", "max_s", "share_pct"])
        for row in summary.get("rows", ()):
            writer.writerow(
                [
                    row["name"],
                    row["calls"],
                    row["errors"],
                    f"{row['total_s']:.6f}",
                    f"{row['avg_s']:.6f}",
                    f"{row['max_s']:.6f}",
                    f"{row['share_pct']:.2f}",
                ]
            )
        yield buffer.getvalue()

    return _chunked(lines())


def _events(events: Iterable[EventLike]) -> Iterator[TraceEvent]:
    return map(as_event, events)


def _in_perfetto(event: TraceEvent) -> bool:
    return event.ts is not None and event.kind not in ("unparsed", "info")


def _perfetto_piece(event: TraceEvent) -> str:
    return _json_record(_perfetto_event(event, event.pid if event.pid is not None else 0))


def _perfetto_event(event: TraceEvent, pid: int) -> dict[str, Any]:
    ts_us = round(event.ts * _US_PER_S, 3) if event.ts is not None else 0
    if event.kind == "syscall":
        args: dict[str, Any] = {"args": event.args, "ret": event.ret}
        if event.errno is not None:
            args["errno"] = event.errno
            args["errmsg"] = event.errmsg
        if event.fd_paths:
            args["fd_paths"] = {str(key): path for key, path in event.fd_paths.items()}
        if event.cut_short:
            args["cut_short"] = True
        return {
            "name": event.name,
            "cat": event.category,
            "ph": "X",
            "ts": ts_us,
            "dur": round((event.duration_s or 0.0) * _US_PER_S, 3),
            "pid": pid,
            "tid": pid,
            "args": args,
        }
    if event.kind == "signal":
        name = event.name
    elif event.kind == "exit":
        name = f"exited with {event.retval}"
    else:
        name = f"killed by {event.name}"
    return {
        "name": name,
        "cat": event.category,
        "ph": "i",
        "s": "t",
        "ts": ts_us,
        "pid": pid,
        "tid": pid,
        "args": {"detail": event.args},
    }


def _json_record(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _chunked(pieces: Iterable[str]) -> Iterator[str]:
    """Join small pieces into chunks of about CHUNK_CHARS characters."""
    batch: list[str] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece)
        if size >= CHUNK_CHARS:
            yield "".join(batch)
            batch.clear()
            size = 0
    if batch:
        yield "".join(batch)
