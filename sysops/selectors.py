"""Reads: what the dashboard, the run page and the websocket snapshot show."""

from __future__ import annotations

import functools
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from sysops import sandbox
from sysops.agent.recorder import MAX_LOG_LINES, MAX_RESULT_BYTES, MAX_RESULT_ROWS
from sysops.experiments import registry
from sysops.models import HostAgent, Run, RunLog, SampleChunk, TraceChunk
from sysops.sandbox.filter_cost import FilterCost, cached_filter_cost
from sysops.tracing import timeline
from sysops.tracing.search import TraceQuery
from sysops.worker.fingerprint import fingerprint

LOG_LINES_SHOWN = 500
TRACE_LINES_SHOWN = 1000
# A host's newest agents listed on the dashboard (one per start of an agent there).
AGENTS_SHOWN = 10
TRACE_PAGE_SIZE = 200
# A search page ends (short, with a cursor) after this long, so a rare match in a huge trace
# never holds a request for seconds: the browser asks for the next stretch.
TRACE_SEARCH_BUDGET_S = 1.0
_CHUNKS_PER_READ = 8


@functools.cache
def this_host() -> dict[str, Any]:
    """This host's fingerprint, read once per process, under the name its agent registers."""
    return {**fingerprint(), "hostname": settings.SYSOPS_HOST_NAME}


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


# A time unit in a chart axis or a result row: the run measured how long something takes, so
# its figures include the sandbox's seccomp filter on every syscall.
TIME_UNIT = re.compile(r"(?<![A-Za-z])(ns|µs|us|ms)(?![A-Za-z])")


def measures_time(run: Run, charts: list[dict[str, Any]]) -> bool:
    units = [c.get("y_label", "") for c in charts]
    units += [str(r.get("unit", "")) for r in run.results if isinstance(r, dict)]
    return any(TIME_UNIT.search(unit) for unit in units)


@dataclass(frozen=True)
class HostRow:
    """One host name on the dashboard: its agents (newest first) folded into one state."""

    name: str
    state: str
    agents: list[HostAgent]  # the newest AGENTS_SHOWN
    agent_count: int
    running: int
    max_running: int
    heartbeat_at: datetime
    fingerprint: dict[str, Any]
    sandbox: dict[str, Any]


def hosts() -> list[HostRow]:
    """Every host an agent registered from lately: alive (idle), busy (running runs) or gone."""
    since = timezone.now() - timedelta(seconds=HostAgent.FORGOTTEN_AFTER_S)
    by_name: dict[str, list[HostAgent]] = {}
    for agent in HostAgent.objects.filter(heartbeat_at__gte=since).select_related("host"):
        by_name.setdefault(agent.name, []).append(agent)
    rows = []
    for name, agents in sorted(by_name.items()):
        live = [agent for agent in agents if not agent.is_gone]
        shown = (live or agents)[0]
        running = sum(agent.running for agent in live)
        if not live:
            state = HostAgent.State.GONE
        else:
            state = HostAgent.State.BUSY if running else HostAgent.State.ALIVE
        rows.append(
            HostRow(
                name=name,
                state=state,
                agents=agents[:AGENTS_SHOWN],
                agent_count=len(agents),
                running=running,
                max_running=sum(agent.max_running for agent in live),
                heartbeat_at=max(agent.heartbeat_at for agent in agents),
                fingerprint=shown.host.fingerprint if shown.host else {},
                sandbox=shown.sandbox,
            )
        )
    return rows


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


def trace_calls(run: Run) -> timeline.Calls:
    """A run's traced calls for the timeline, read once per stored state of the run: zooming
    in and out asks again for windows of the same calls."""
    return _trace_calls(run.pk, run.created_at, run.last_seq)


# A million calls take about 30 MB: keep the last two traces looked at.
@functools.lru_cache(maxsize=2)
def _trace_calls(run_id: int, created_at: Any, last_seq: int) -> timeline.Calls:
    run = Run.objects.get(pk=run_id)
    return timeline.Calls.of(trace_events(run), t0=run.trace.get("t0"))


def pinned_host_gone(run: Run) -> bool:
    """A queued run pinned to a host no live agent serves: it waits for one to come back."""
    if not run.pinned_host or run.status != Run.Status.QUEUED:
        return False
    return not HostAgent.objects.alive().filter(name=run.pinned_host).exists()


def group_run_ids(run: Run) -> list[int]:
    if not run.group:
        return []
    return list(Run.objects.filter(group=run.group).order_by("id").values_list("id", flat=True))


def run_context(run: Run) -> dict[str, Any]:
    experiment = registry.get(run.experiment)
    charts = [c.to_dict() for c in experiment.charts(run.params)] if experiment else []
    return {
        "run": run,
        "experiment": experiment,
        "charts": charts,
        "filter_cost": sandbox_filter_cost() if measures_time(run, charts) else None,
        # The runs made with it on every live host (the form's "all hosts"), itself included.
        "group_ids": group_run_ids(run),
        "pinned_host_gone": pinned_host_gone(run),
        "log_lines_shown": LOG_LINES_SHOWN,
        "trace_lines_shown": TRACE_LINES_SHOWN,
    }
