"""Writes. Every live event is published only after the transaction that holds it commits."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from sysops import live, stages
from sysops.models import Run


@transaction.atomic
def run_create(
    *,
    experiment: str,
    params: dict[str, Any],
    trace_mode: str = Run.TraceMode.OFF,
    user: AbstractBaseUser | AnonymousUser | None,
    received_ns: int | None = None,
) -> Run:
    """A queued run; ``received_ns`` is when its request arrived (its first stage)."""
    run = Run.objects.create(
        experiment=experiment,
        params=params,
        trace_mode=trace_mode,
        user=user if user is not None and user.is_authenticated else None,
        stages={"post": received_ns or stages.now_ns()},
    )
    # robust: the run is stored whatever happens to its announcement (the agent polls anyway).
    transaction.on_commit(lambda: _queued(run.pk), robust=True)
    return run


def _queued(run_id: int) -> None:
    committed_ns = stages.now_ns()
    live.run_queued(run_id)  # the agent claims it meanwhile
    stages.mark(run_id, {"committed": committed_ns})


@transaction.atomic
def run_cancel(*, run: Run) -> Run:
    """A queued run ends here and now; a running one is asked to stop (its runner sees the flag)."""
    if Run.objects.cancel_queued(run.pk):
        transaction.on_commit(lambda: live.run_status_changed(run.pk))
    else:
        Run.objects.request_cancel(run.pk)
    run.refresh_from_db()
    return run
