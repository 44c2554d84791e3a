"""An experiment run for real through the runner and the sandbox, as a benchmark's "what users
see" side: the values of one chart series, as the run stored them."""

from __future__ import annotations

from typing import Any


def series_values(experiment: str, params: dict[str, Any], series: str) -> list[float]:
    """Run ``experiment`` with ``params`` (Django set up, database migrated) and return the y
    values of ``series`` from its stored samples; raises if the run did not succeed."""
    from sysops.agent.runner import execute
    from sysops.models import Run, SampleChunk

    run = Run.objects.create(experiment=experiment, params=params, status=Run.Status.RUNNING)
    run = execute(run.pk, lambda group, message: None)
    if run.status != Run.Status.SUCCEEDED:
        raise RuntimeError(f"the {experiment} run {run.status}: {run.reason}")
    return [
        y
        for chunk in SampleChunk.objects.filter(run=run)
        for s, _, y in chunk.samples
        if s == series
    ]
