"""A run's trace as a timeline: one track per pid (strace -f reports threads under their own
ids), each syscall a slice from its start for its -T duration.

Bounded whatever the trace's size: at most ``max_slices`` slices leave the server. Beyond that,
calls are merged per track into time bins (a merged slice spans its first call's start to its
last call's end and says how many calls it stands for); zooming in asks again for a narrower
window, which then holds fewer calls and comes back exact.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from typing import Any

MAX_SLICES = 50_000
# Calls that say which side of a connection a process is on.
SERVER_CALLS = frozenset({"listen", "accept", "accept4"})
CLIENT_CALLS = frozenset({"connect"})


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
    pids: dict[int, int] = {}  # pid -> track index, in order of first appearance
    calls: list[int] = []  # per track, every call in the trace
    roles: list[set[str]] = []
    names: dict[str, int] = {}
    track, name = array("i"), array("i")
    start, duration = array("d"), array("d")
    failed = array("b")
    first_s = last_s = None
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
            calls.append(0)
            roles.append(set())
        calls[index] += 1
        call = event.get("name") or "?"
        if call in SERVER_CALLS:
            roles[index].add("server")
        elif call in CLIENT_CALLS:
            roles[index].add("client")
        begin = ts - t0
        length = event.get("duration_s") or 0.0
        first_s = begin if first_s is None else min(first_s, begin)
        last_s = begin + length if last_s is None else max(last_s, begin + length)
        if (start_s is not None and begin + length < start_s) or (
            end_s is not None and begin > end_s
        ):
            continue
        track.append(index)
        name.append(names.setdefault(call, len(names)))
        start.append(begin)
        duration.append(length)
        failed.append(1 if event.get("errno") or event.get("cut_short") else 0)

    window = (
        start_s if start_s is not None else (first_s or 0.0),
        end_s if end_s is not None else (last_s or 0.0),
    )
    total = len(start)
    if total <= max_slices:
        slices = [
            [track[i], round(start[i], 9), round(duration[i], 9), name[i], failed[i], 1]
            for i in range(total)
        ]
    else:
        slices = _merged(track, name, start, duration, failed, window, max_slices // len(pids))
    return {
        "t0": t0,
        "span": [first_s or 0.0, last_s or 0.0],
        "window": list(window),
        "tracks": [
            {"pid": pid, "calls": calls[i], "label": _label(pid, roles[i])}
            for pid, i in pids.items()
        ],
        "names": list(names),
        # [track, start_s, duration_s, name index, failed (0/1), calls it stands for]
        "slices": slices,
        "calls_in_window": total,
        "merged": total > max_slices,
    }


def _merged(
    track: array,
    name: array,
    start: array,
    duration: array,
    failed: array,
    window: tuple[float, float],
    bins_per_track: int,
) -> list[list[Any]]:
    """One slice per (track, time bin) that has calls, named after its longest call."""
    low, high = window
    width = max(high - low, 1e-9) / max(1, bins_per_track)
    bins: dict[tuple[int, int], list[Any]] = {}
    for i in range(len(start)):
        key = (track[i], int((start[i] - low) / width))
        end = start[i] + duration[i]
        merged = bins.get(key)
        if merged is None:
            bins[key] = [track[i], start[i], end, name[i], failed[i], 1, duration[i]]
            continue
        merged[1] = min(merged[1], start[i])
        merged[2] = max(merged[2], end)
        merged[4] |= failed[i]
        merged[5] += 1
        if duration[i] > merged[6]:
            merged[3], merged[6] = name[i], duration[i]
    return [
        [t, round(s, 9), round(e - s, 9), n, f, count]
        for t, s, e, n, f, count, _ in sorted(bins.values(), key=lambda b: (b[0], b[1]))
    ]


def _label(pid: int, roles: set[str]) -> str:
    if roles == {"server"}:
        return f"pid {pid} · server (listen/accept)"
    if roles == {"client"}:
        return f"pid {pid} · client (connect)"
    if roles:
        return f"pid {pid} · client and server"
    return f"pid {pid}"
