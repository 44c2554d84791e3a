"""Runs and what they produced. The database is the source of truth and the queue."""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Host(models.Model):
    """A host fingerprint as a worker reported it (kernel, CPU, mitigations, clocksource…)."""

    digest = models.CharField(max_length=64, unique=True)
    hostname = models.CharField(max_length=255, blank=True)
    fingerprint = models.JSONField()
    first_seen = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.hostname or self.digest[:12]

    @classmethod
    def for_fingerprint(cls, fingerprint: dict[str, Any]) -> Host:
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
        host, _ = cls.objects.get_or_create(
            digest=digest,
            defaults={"fingerprint": fingerprint, "hostname": fingerprint.get("hostname") or ""},
        )
        return host


class RunQuerySet(models.QuerySet["Run"]):
    """Every change of a run's status, each one conditional update on the state it leaves, so
    two writers (a runner finishing, the agent's recovery, a cancel) can never both win:
    queued → running only from queued, a terminal state only from queued (cancel) or running.
    "0 rows changed" means someone else got there first; the first terminal state stays."""

    def claim(self, run_id: int, *, by: str) -> bool:
        now = timezone.now()
        return bool(
            self.filter(pk=run_id, status=Run.Status.QUEUED).update(
                status=Run.Status.RUNNING, claimed_by=by, started_at=now, heartbeat_at=now
            )
        )

    def cancel_queued(self, run_id: int) -> bool:
        return bool(
            self.filter(pk=run_id, status=Run.Status.QUEUED).update(
                status=Run.Status.CANCELLED,
                reason="cancelled before it started",
                finished_at=timezone.now(),
            )
        )

    def request_cancel(self, run_id: int) -> bool:
        return bool(self.filter(pk=run_id, status=Run.Status.RUNNING).update(cancel_requested=True))

    def finish(self, run_id: int, status: str, reason: str, **fields: Any) -> bool:
        """running → ``status`` (terminal) with its reason, and any other ``fields`` written in
        the same statement; False when the run was no longer running."""
        if status not in Run.TERMINAL:
            raise ValueError(f"{status!r} is not a terminal state")
        return bool(
            self.filter(pk=run_id, status=Run.Status.RUNNING).update(
                status=status,
                reason=reason[:REASON_MAX_CHARS],
                finished_at=timezone.now(),
                **fields,
            )
        )


REASON_MAX_CHARS = 4000


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        TIMED_OUT = "timed_out"

    TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT})

    class TraceMode(models.TextChoices):
        OFF = "off", "off"
        SAMPLED = "sampled", "sampled: a short traced pass besides the measured one"
        FULL = "full", "full: the whole work again, traced, besides the measured pass"

    experiment = models.CharField(max_length=64)
    params = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    reason = models.TextField(blank=True, help_text="Why the run ended as it did.")
    progress = models.FloatField(default=0.0)
    progress_message = models.CharField(max_length=200, blank=True)
    phase = models.CharField(max_length=64, blank=True)
    results = models.JSONField(default=list, blank=True)
    unsandboxed = models.BooleanField(default=False)
    # Ran without its memory, pids and cpu cgroup, by the development switch.
    unbounded = models.BooleanField(default=False)
    trace_mode = models.CharField(max_length=8, choices=TraceMode.choices, default=TraceMode.OFF)
    # The trace's state for the page: status, reason, which pass, event count, summary, observer.
    trace = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.SET_NULL)

    # Who owns the run while it runs: the agent that claimed it and its runner process.
    claimed_by = models.CharField(max_length=255, blank=True)
    runner_pid = models.IntegerField(null=True, blank=True)
    # The host uid the run's sandboxes ran as, leased for the run alone (sandbox/uids.py).
    sandbox_uid = models.BigIntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Live batches are numbered so a viewer can tell what its snapshot already holds.
    last_seq = models.IntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "id"])]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.experiment}, {self.status})"

    def get_absolute_url(self) -> str:
        return reverse("run-detail", args=[self.pk])

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def duration_s(self) -> float | None:
        if not self.started_at:
            return None
        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()


class SampleChunk(models.Model):
    """One batch of samples ``[[series, x, y], …]``, as the runner flushed it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="sample_chunks")
    seq = models.IntegerField()
    samples = models.JSONField()

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="sample_chunk_seq")]


class RunLog(models.Model):
    """Log lines and errors of a run: the worker's, the runner's and the sandbox's."""

    class Level(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="logs")
    seq = models.IntegerField()
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    source = models.CharField(max_length=16, default="worker")
    message = models.TextField()

    class Meta:
        ordering = ["id"]


class TraceChunk(models.Model):
    """A batch of trace events (zlib-compressed JSON list of event dicts), in order."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="trace_chunks")
    seq = models.IntegerField()
    count = models.IntegerField()
    data = models.BinaryField()
    # The run-wide index of this chunk's first event, and what the chunk holds
    # (tracing.search.chunk_index) so a search skips it unread; null on chunks stored before.
    start = models.BigIntegerField(null=True, blank=True)
    index = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="trace_chunk_seq")]

    @staticmethod
    def pack(events: list[dict[str, Any]]) -> bytes:
        return zlib.compress(json.dumps(events, separators=(",", ":")).encode(), 1)

    def events(self) -> list[dict[str, Any]]:
        return json.loads(zlib.decompress(self.data))
