"""Writes. Every live event is published only after the transaction that holds it commits."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, connection, transaction

from sysops import live, stages
from sysops.models import Run

if TYPE_CHECKING:
    from django import forms

    from sysops.experiments.base import Experiment

# A form's one-time token (sysops_tags.submission_field); anything else is ignored.
SUBMISSION_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")


class QuotaExceeded(Exception):
    """A run refused by a quota; the message is for the person who asked."""


def _owner(user: AbstractBaseUser | AnonymousUser | None) -> AbstractBaseUser | None:
    return user if user is not None and user.is_authenticated else None


# PostgreSQL advisory lock key of run creation ("sysops-queue" as a number).
QUEUE_LOCK_KEY = 0x5359_5351


def _check_quotas(owner: AbstractBaseUser | None, client_addr: str | None) -> None:
    """Refuse a run over the total queue cap or the asker's own share of it. The count and the
    insert that follows hold one lock, so two requests cannot both take the last place: SQLite's
    IMMEDIATE transactions hold its write lock; PostgreSQL takes a transaction-scoped advisory
    lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [QUEUE_LOCK_KEY])
    queued = Run.objects.filter(status=Run.Status.QUEUED)
    total_max = settings.SYSOPS_QUEUE_MAX
    if queued.count() >= total_max:
        raise QuotaExceeded(
            f"The queue is full ({total_max} runs waiting). Try again when some have started."
        )
    # Without users (a loopback install), the client address stands for the person.
    mine = queued.filter(user=owner) if owner else queued.filter(user=None, client_addr=client_addr)
    own_max = settings.SYSOPS_QUEUED_PER_USER
    if mine.count() >= own_max:
        raise QuotaExceeded(
            f"You already have {own_max} runs waiting, the most one person may queue. "
            "Wait for one to start, or cancel one."
        )


@transaction.atomic
def run_create(
    *,
    experiment: str,
    params: dict[str, Any],
    trace_mode: str = Run.TraceMode.OFF,
    user: AbstractBaseUser | AnonymousUser | None,
    parent: Run | None = None,
    client_addr: str | None = None,
    submission: str | None = None,
    received_ns: int | None = None,
    pinned_host: str = "",
    group: str = "",
) -> Run:
    """Queue a run, or return the one this form ``submission`` already queued (a double
    click); raises QuotaExceeded, creating nothing, when a quota refuses it. ``received_ns`` is
    when its request arrived (its first stage)."""
    if submission and (earlier := Run.objects.filter(submission=submission).first()):
        return earlier
    owner = _owner(user)
    _check_quotas(owner, client_addr)
    try:
        with transaction.atomic():
            run = Run.objects.create(
                experiment=experiment,
                params=params,
                trace_mode=trace_mode,
                user=owner,
                parent=parent,
                client_addr=client_addr,
                submission=submission or None,
                stages={"post": received_ns or stages.now_ns()},
                pinned_host=pinned_host,
                group=group,
            )
    except IntegrityError:
        # The same submission committed by a concurrent request between our look and insert.
        if submission:
            return Run.objects.get(submission=submission)
        raise
    # robust: the run is stored whatever happens to its announcement (the agent polls anyway).
    transaction.on_commit(lambda: _queued(run.pk), robust=True)
    return run


def _queued(run_id: int) -> None:
    # Stored before the agent hears of the run: written while it claims, the two writes would
    # queue for the database's lock (SQLite), the claim waiting in its busy handler's sleeps.
    stages.mark(run_id, {"committed": stages.now_ns()})
    live.run_queued(run_id)


@transaction.atomic
def runs_create_on_hosts(
    *, hosts: list[str], submission: str | None = None, **run: Any
) -> list[Run]:
    """``run_create(**run)`` once pinned to each of ``hosts`` ("" = any host); several runs
    share a group. The form ``submission`` token goes on the first run: a resent form gets the
    runs the first one made."""
    if submission and (earlier := Run.objects.filter(submission=submission).first()):
        return list(Run.objects.filter(group=earlier.group)) if earlier.group else [earlier]
    group = uuid.uuid4().hex if len(hosts) > 1 else ""
    with transaction.atomic():
        return [
            run_create(
                **run, pinned_host=host, group=group, submission=submission if i == 0 else None
            )
            for i, host in enumerate(hosts)
        ]


@dataclass
class FormQueued:
    """What came of a posted experiment form: the runs it queued, or none, with the bound form
    (its errors) or a quota's reason."""

    form: forms.Form
    runs: list[Run] = field(default_factory=list)
    refusal: str = ""


def parent_run(slug: str, value: str | None) -> Run | None:
    """The run a "run again with changes" form starts from (its ``from`` value, if any); raises
    Run.DoesNotExist when the value names none of experiment ``slug``'s runs."""
    if not value:
        return None
    if not value.isdigit() or len(value) > 12:
        raise Run.DoesNotExist(value)
    return Run.objects.get(pk=int(value), experiment=slug)


def queue_form(
    exp: Experiment,
    data: Mapping[str, Any],
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    client_addr: str | None,
    parent: Run | None = None,
    submission: str = "",
    received_ns: int | None = None,
    hosts: list[str] | None = None,
) -> FormQueued:
    """Validate an experiment's form and queue its run, one per host it asks for (``hosts``
    overrides the form's choice). What the form's page posts, over HTTP or its socket."""
    params, trace_mode, form = exp.clean_params(data)
    if params is None:
        return FormQueued(form)
    try:
        runs = runs_create_on_hosts(
            hosts=form.cleaned_data["host"] if hosts is None else hosts,
            experiment=exp.slug,
            params=params,
            trace_mode=trace_mode,
            user=user,
            parent=parent,
            client_addr=client_addr,
            submission=submission if SUBMISSION_RE.fullmatch(submission) else None,
            received_ns=received_ns,
        )
    except QuotaExceeded as refusal:
        return FormQueued(form, refusal=str(refusal))
    return FormQueued(form, runs)


@transaction.atomic
def run_cancel(*, run: Run, by: AbstractBaseUser | AnonymousUser | None = None) -> Run:
    """A queued run ends here and now; a running one is asked to stop (its runner sees the flag).
    The caller checks that ``by`` may (permissions.can_cancel); the run records who it was."""
    if Run.objects.cancel_queued(run.pk, by=_owner(by)):
        transaction.on_commit(lambda: live.run_status_changed(run.pk))
    else:
        Run.objects.request_cancel(run.pk, by=_owner(by))
    run.refresh_from_db()
    return run
