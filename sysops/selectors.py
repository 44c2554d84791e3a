"""Reads: what the dashboard, the run page and the websocket snapshot show."""

from __future__ import annotations

import functools
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from sysops import sandbox
from sysops.agent.recorder import MAX_LOG_LINES, MAX_RESULT_BYTES, MAX_RESULT_ROWS
from sysops.experiments import registry
from sysops.models import Run, RunLog, SampleChunk, TraceChunk
from sysops.sandbox.filter_cost import FilterCost, cached_filter_cost
from sysops.tracing.search import TraceQuery
from sysops.worker.fingerprint import fingerprint

LOG_LINES_SHOWN = 500
TRACE_LINES_SHOWN = 1000
TRACE_PAGE_SIZE = 200
# A search page ends (short, with a cursor) after this long, so a rare match in a huge trace
# never holds a request for seconds: the browser asks for the next stretch.
TRACE_SEARCH_BUDGET_S = 1.0
_CHUNKS_PER_READ = 8


@functools.cache
def this_host() -> dict[str, Any]:
    """This host's fingerprint, read once per process."""
    return fingerprint()


@dataclass(frozen=True)
class SandboxStatus:
    """What pages say about the sandbox: the host report, and whether runs go ahead."""

    report: sandbox.HostReport
    refused: str  # why every run would be refused; "" when runs go ahead
    warnings: list[str]  # development switches in effect
    visible_inside: tuple[str, ...] = sandbox.VISIBLE_INSIDE

    @property
    def checks(self) -> list[sandbox.Check]:
        return self.report.checks

    @property
    def output_limits(self) -> str:
        return (
            f"worker output per pass: {settings.SYSOPS_OUTPUT_CAP_BYTES:,} bytes and "
            f"{settings.SYSOPS_MAX_EVENTS:,} events; per run: {MAX_RESULT_ROWS} result rows "
            f"({MAX_RESULT_BYTES >> 20} MiB) and {MAX_LOG_LINES:,} log lines; every event "
            "checked against its schema"
        )


def sandbox_report() -> SandboxStatus:
    """What this host allows, probed once per process (at the first dashboard view or run),
    read with the settings that decide whether a run may go ahead anyway."""
    report = sandbox.cached_host_report()
    refused, warnings = "", []
    if not report.can_sandbox:
        if settings.SYSOPS_ALLOW_UNSANDBOXED:
            warnings.append(f"UNSANDBOXED runs (SYSOPS_ALLOW_UNSANDBOXED): {report.reason}")
        else:
            refused = report.reason
    cgroups = report.check("cgroups")
    if not refused and cgroups is not None and not cgroups.ok:
        if settings.SYSOPS_ALLOW_UNBOUNDED:
            warnings.append(f"UNBOUNDED runs (SYSOPS_ALLOW_UNBOUNDED): {cgroups.detail}")
        else:
            refused = f"{sandbox.NO_BOUND}: {cgroups.detail}"
    return SandboxStatus(report, refused, warnings)


def sandbox_filter_cost() -> FilterCost | None:
    """What the sandbox's seccomp filter adds per syscall here, measured once per process."""
    return cached_filter_cost()


def recent_runs(limit: int = 15) -> QuerySet[Run]:
    return Run.objects.select_related("user")[:limit]


@dataclass(frozen=True)
class RunSnapshot:
    run: Run
    seq: int
    samples: list[list[Any]]
    logs: list[RunLog]
    hidden_logs: int
    trace_tail: list[dict[str, Any]]


def run_snapshot(run_id: int) -> RunSnapshot | None:
    run = Run.objects.select_related("host").filter(pk=run_id).first()
    if run is None:
        return None
    # Read only what the run row says was committed, so the live batches that follow join up.
    chunks = SampleChunk.objects.filter(run=run, seq__lte=run.last_seq).values_list(
        "samples", flat=True
    )
    samples = [s for chunk in chunks for s in chunk]
    logs_qs = RunLog.objects.filter(run=run, seq__lte=run.last_seq)
    total = logs_qs.count()
    logs = list(logs_qs.order_by("-id")[:LOG_LINES_SHOWN])[::-1]
    tail = trace_tail(run, up_to_seq=run.last_seq)
    return RunSnapshot(run, run.last_seq, samples, logs, total - len(logs), tail)


def trace_tail(run: Run, *, up_to_seq: int, limit: int = TRACE_LINES_SHOWN) -> list[dict[str, Any]]:
    """The newest ``limit`` trace events stored up to batch ``up_to_seq``."""
    tail: list[dict[str, Any]] = []
    chunks = TraceChunk.objects.filter(run=run, seq__lte=up_to_seq).order_by("-seq")
    for chunk in chunks.iterator(chunk_size=4):
        tail[:0] = chunk.events()
        if len(tail) >= limit:
            break
    return tail[-limit:]


def trace_events(run: Run) -> Iterator[dict[str, Any]]:
    """Every stored trace event of a run, in order, a chunk at a time.

    Each read is a query of its own, finished before the events are handed out: a download
    that stops half-way (the browser went away) must not leave a cursor open, and with it a
    read transaction that would show this thread's later requests an old database."""
    last_seq = -1
    while True:
        chunks = list(
            TraceChunk.objects.filter(run=run, seq__gt=last_seq).order_by("seq")[:_CHUNKS_PER_READ]
        )
        if not chunks:
            return
        last_seq = chunks[-1].seq
        for chunk in chunks:
            yield from chunk.events()


@dataclass(frozen=True)
class TracePage:
    """One page of search results: the matching events with their run-wide index, where
    to continue from, and whether the scan stopped before the end of what is stored (page full,
    or the time budget spent)."""

    events: list[tuple[int, dict[str, Any]]]
    next_index: int
    more: bool
    scanned: int  # events decoded to build this page
    stored: int  # events stored when the search ran


def trace_search(
    run: Run,
    query: TraceQuery,
    *,
    after: int = 0,
    limit: int = TRACE_PAGE_SIZE,
    budget_s: float = TRACE_SEARCH_BUDGET_S,
) -> TracePage:
    """The first ``limit`` events matching ``query`` from event index ``after`` on, in order.

    Continuing from ``next_index`` gives the following page with no gap and no repeat. Chunks
    whose index rules them out are never read; past ``budget_s`` the page ends at a chunk
    boundary, possibly short or empty, with ``more`` set."""
    started = time.monotonic()
    rows = (
        TraceChunk.objects.filter(run=run)
        .order_by("seq")
        .values_list("pk", "count", "start", "index")
    )
    candidates: list[tuple[int, int, int, Any]] = []  # (pk, start, count, index)
    position = 0
    for pk, count, start, index in rows:
        # Chunks stored before the start column existed count from their predecessors.
        start = position if start is None else start
        position = start + count
        if position > after and query.may_match(index):
            candidates.append((pk, start, count, index))
    found: list[tuple[int, dict[str, Any]]] = []
    next_index, scanned = max(after, 0), 0
    for i in range(0, len(candidates), _CHUNKS_PER_READ):
        group = candidates[i : i + _CHUNKS_PER_READ]
        data = dict(
            TraceChunk.objects.filter(pk__in=[c[0] for c in group]).values_list("pk", "data")
        )
        for k, (pk, start, count, index) in enumerate(group):
            stored_json = zlib.decompress(data[pk])
            first = max(0, next_index - start)
            for j, event in query.candidates(stored_json, count, index):
                if j < first:
                    continue
                scanned += 1
                if query.matches(event):
                    found.append((start + j, event))
                    if len(found) >= limit:
                        return TracePage(found, start + j + 1, True, scanned, position)
            next_index = start + count
            last = i + k == len(candidates) - 1
            if not last and time.monotonic() - started > budget_s:
                return TracePage(found, next_index, True, scanned, position)
    return TracePage(found, max(next_index, position), False, scanned, position)


def run_context(run: Run) -> dict[str, Any]:
    experiment = registry.get(run.experiment)
    charts = [c.to_dict() for c in experiment.charts(run.params)] if experiment else []
    return {
        "run": run,
        "experiment": experiment,
        "charts": charts,
        "log_lines_shown": LOG_LINES_SHOWN,
        "trace_lines_shown": TRACE_LINES_SHOWN,
    }
