"""A run's trace as a timeline: one track per pid (strace -f reports threads under their own
ids), each syscall a slice from its start for its -T duration.

Bounded whatever the trace's size: at most ``max_slices`` slices leave the server. Beyond that,
calls are merged per track into time bins (a merged slice spans its first call's start to its
last call's end and says how many calls it stands for); zooming in asks again for a narrower
window, which then holds fewer calls and comes back exact. The calls are read once into compact
arrays sorted by start (about 30 bytes a call), so each zoom is a bisection, not a new pass over
the stored events.
"""

from __future__ import annotations

import functools
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_SLICES = 50_000
# Calls that say which side of a connection a process is on.
SERVER_CALLS = frozenset({"listen", "accept", "accept4"})
CLIENT_CALLS = frozenset({"connect"})


@dataclass(frozen=True)
class Track:
    pid: int
    calls: int
    label: str


@dataclass(frozen=True)
class Calls:
    """Every syscall of a trace, sorted by start (seconds after ``t0``)."""

    t0: float | None
    tracks: list[Track]
    names: list[str]
    track: array  # per call: index into tracks
    name: array  # index into names
    start: array
    duration: array
    failed: array
    longest_s: float

    @classmethod
    def of(cls, events: Iterable[Mapping[str, Any]], *, t0: float | None) -> Calls:
        pids: dict[int, int] = {}  # pid -> track index, in order of first appearance
        counts: list[int] = []
        roles: list[set[str]] = []
        names: dict[str, int] = {}
        track, name, failed = array("i"), array("i"), array("b")
        start, duration = array("d"), array("d")
        for event in events:
            ts = event.get("ts")
            if event.get("kind") != "syscall" or ts is None:
                continue
            if t0 is None:
                t0 = ts
            pid = event.get("pid") or 0
            index = pids.get(pid)
            if index is None:
                index = pids[pid] = len(pids)
                counts.append(0)
                roles.append(set())
            counts[index] += 1
            call = event.get("name") or "?"
            if call in SERVER_CALLS:
                roles[index].add("server")
            elif call in CLIENT_CALLS:
                roles[index].add("client")
            track.append(index)
            name.append(names.setdefault(call, len(names)))
            start.append(ts - t0)
            duration.append(event.get("duration_s") or 0.0)
            failed.append(1 if event.get("errno") or event.get("cut_short") else 0)
        # A call split by another pid's (unfinished … resumed) is stored when it ends: nearly
        # sorted already, which is what timsort is fastest at.
        order = sorted(range(len(start)), key=start.__getitem__)
        return cls(
            t0=t0,
            tracks=[Track(pid, counts[i], _label(pid, roles[i])) for pid, i in pids.items()],
            names=list(names),
            track=array("i", (track[i] for i in order)),
            name=array("i", (name[i] for i in order)),
            start=array("d", (start[i] for i in order)),
            duration=array("d", (duration[i] for i in order)),
            failed=array("b", (failed[i] for i in order)),
            longest_s=max(duration, default=0.0),
        )

    @functools.cached_property
    def span(self) -> tuple[float, float]:
        if not self.start:
            return (0.0, 0.0)
        return (self.start[0], max(s + d for s, d in zip(self.start, self.duration, strict=True)))

    @functools.cached_property
    def overview(self) -> dict[str, Any]:
        """The whole trace, which every "whole trace" click asks for again."""
        return self._window(*self.span, MAX_SLICES)

    def window(
        self,
        start_s: float | None = None,
        end_s: float | None = None,
        max_slices: int = MAX_SLICES,
    ) -> dict[str, Any]:
        """The slices that overlap [``start_s``, ``end_s``] (None: unbounded), as the
        timeline endpoint sends them."""
        span = self.span
        low = start_s if start_s is not None and start_s > span[0] else span[0]
        high = end_s if end_s is not None and end_s < span[1] else span[1]
        if (low, high) == span and max_slices == MAX_SLICES:
            return self.overview
        return self._window(low, high, max_slices)

    def _window(self, low: float, high: float, max_slices: int) -> dict[str, Any]:
        span = self.span
        # Calls that start before the window but last into it: none starts earlier than the
        # longest call's length before it.
        first = bisect_left(self.start, low - self.longest_s)
        last = bisect_right(self.start, high)
        picked = [i for i in range(first, last) if self.start[i] + self.duration[i] >= low]
        merged = len(picked) > max_slices
        if merged:
            slices = self._merged(picked, (low, high), max_slices // max(1, len(self.tracks)))
        else:
            slices = [
                [
                    self.track[i],
                    round(self.start[i], 9),
                    round(self.duration[i], 9),
                    self.name[i],
                    self.failed[i],
                    1,
                ]
                for i in picked
            ]
        return {
            "t0": self.t0,
            "span": list(span),
            "window": [low, high],
            "tracks": [track.__dict__ for track in self.tracks],
            "names": self.names,
            # [track, start_s, duration_s, name index, failed (0/1), calls it stands for]
            "slices": slices,
            "calls_in_window": len(picked),
            "merged": merged,
        }

    def _merged(
        self, picked: list[int], window: tuple[float, float], bins_per_track: int
    ) -> list[list[Any]]:
        """One slice per (track, time bin) that has calls, named after its longest call."""
        low, high = window
        width = max(high - low, 1e-9) / max(1, bins_per_track)
        bins: dict[tuple[int, int], list[Any]] = {}
        for i in picked:
            start, length = self.start[i], self.duration[i]
            key = (self.track[i], int((start - low) / width))
            merged = bins.get(key)
            if merged is None:
                bins[key] = [key[0], start, start + length, self.name[i], self.failed[i], 1, length]
                continue
            merged[1] = min(merged[1], start)
            merged[2] = max(merged[2], start + length)
            merged[4] |= self.failed[i]
            merged[5] += 1
            if length > merged[6]:
                merged[3], merged[6] = self.name[i], length
        return [
            [t, round(s, 9), round(e - s, 9), n, f, count]
            for t, s, e, n, f, count, _ in sorted(bins.values(), key=lambda b: (b[0], b[1]))
        ]


def timeline(
    events: Iterable[Mapping[str, Any]],
    *,
    t0: float | None,
    start_s: float | None = None,
    end_s: float | None = None,
    max_slices: int = MAX_SLICES,
) -> dict[str, Any]:
    """The slices of stored trace ``events`` (dicts as TraceChunk holds them) that overlap
    [``start_s``, ``end_s``] (seconds after ``t0``; None: unbounded)."""
    return Calls.of(events, t0=t0).window(start_s, end_s, max_slices)


def _label(pid: int, roles: set[str]) -> str:
    if roles == {"server"}:
        return f"pid {pid} · server (listen/accept)"
    if roles == {"client"}:
        return f"pid {pid} · client (connect)"
    if roles:
        return f"pid {pid} · client and server"
    return f"pid {pid}"
