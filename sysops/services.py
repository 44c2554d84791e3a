"""Writes. Every live event is published only after the transaction that holds it commits."""

from __future__ import annotations

import uuid
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
    pinned_host: str = "",
    group: str = "",
) -> Run:
    run = Run.objects.create(
        experiment=experiment,
        params=params,
        trace_mode=trace_mode,
        user=user if user is not None and user.is_authenticated else None,
        pinned_host=pinned_host,
        group=group,
    )
    transaction.on_commit(lambda: live.run_queued(run.pk))
    return run


@transaction.atomic
def runs_create_on_hosts(*, hosts: list[str], **run: Any) -> list[Run]:
    """``run_create(**run)`` once pinned to each of ``hosts`` ("" = any host); several runs
    share a group."""
    group = uuid.uuid4().hex if len(hosts) > 1 else ""
    return [run_create(**run, pinned_host=host, group=group) for host in hosts]


@transaction.atomic
def run_cancel(*, run: Run) -> Run:
    """A queued run ends here and now; a running one is asked to stop (its runner sees the flag)."""
    if Run.objects.cancel_queued(run.pk):
        transaction.on_commit(lambda: live.run_status_changed(run.pk))
    else:
        Run.objects.request_cancel(run.pk)
    run.refresh_from_db()
    return run
