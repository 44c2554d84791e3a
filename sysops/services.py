"""Writes. Every live event is published only after the transaction that holds it commits."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from sysops import live
from sysops.models import Run


@transaction.atomic
def run_create(
    *,
    experiment: str,
    params: dict[str, Any],
    trace_mode: str = Run.TraceMode.OFF,
    user: AbstractBaseUser | AnonymousUser | None,
    parent: Run | None = None,
) -> Run:
    run = Run.objects.create(
        experiment=experiment,
        params=params,
        trace_mode=trace_mode,
        user=user if user is not None and user.is_authenticated else None,
        parent=parent,
    )
    transaction.on_commit(lambda: live.run_queued(run.pk))
    return run


@transaction.atomic
def run_cancel(*, run: Run) -> Run:
    """A queued run ends here and now; a running one is asked to stop (its runner sees the flag)."""
    if Run.objects.cancel_queued(run.pk):
        transaction.on_commit(lambda: live.run_status_changed(run.pk))
    else:
        Run.objects.request_cancel(run.pk)
    run.refresh_from_db()
    return run
