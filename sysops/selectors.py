"""Reads: what the dashboard, the run page and the websocket snapshot show."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from sysops import sandbox
from sysops.experiments import registry
from sysops.models import Run, RunLog, SampleChunk
from sysops.worker.fingerprint import fingerprint

LOG_LINES_SHOWN = 500


@functools.cache
def this_host() -> dict[str, Any]:
    """This host's fingerprint, read once per process."""
    return fingerprint()


def sandbox_report() -> sandbox.HostReport:
    """What this host allows, probed once per process (at the first dashboard view or run)."""
    return sandbox.cached_host_report()


def recent_runs(limit: int = 15) -> QuerySet[Run]:
    return Run.objects.select_related("user")[:limit]


@dataclass(frozen=True)
class RunSnapshot:
    run: Run
    seq: int
    samples: list[list[Any]]
    logs: list[RunLog]
    hidden_logs: int


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
    return RunSnapshot(run, run.last_seq, samples, logs, total - len(logs))


def run_context(run: Run) -> dict[str, Any]:
    experiment = registry.get(run.experiment)
    charts = [c.to_dict() for c in experiment.charts(run.params)] if experiment else []
    return {"run": run, "experiment": experiment, "charts": charts}
