"""Runs and what they produced. The database is the source of truth and the queue."""

from __future__ import annotations

import hashlib
import json
import zlib
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connections, models, transaction
from django.db.models import Case, Q, Value, When
from django.urls import reverse
from django.utils import timezone

from sysops import stages


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


class HostAgentQuerySet(models.QuerySet["HostAgent"]):
    def alive(self) -> HostAgentQuerySet:
        """Agents that heartbeat within the expiry and have not said they stopped."""
        return self.filter(stopped_at__isnull=True, heartbeat_at__gte=HostAgent.expiry_cutoff())

    def live_names(self) -> list[str]:
        return sorted(set(self.alive().values_list("name", flat=True)))


class HostAgent(models.Model):
    """One agent (embedded or standalone) as it registered itself: the host name it serves
    (``SYSOPS_HOST_NAME``), that host's fingerprint and sandbox report, and its heartbeat."""

    class State(models.TextChoices):
        ALIVE = "alive"
        BUSY = "busy"
        GONE = "gone"

    name = models.CharField(max_length=255, db_index=True)
    agent_id = models.CharField(max_length=255, unique=True)
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.SET_NULL)
    # sandbox.HostReport.to_dict() as the agent probed it at start-up.
    sandbox = models.JSONField(default=dict, blank=True)
    max_running = models.IntegerField(default=1)
    running = models.IntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    # Set by an agent that stopped cleanly: gone at once, not after the expiry.
    stopped_at = models.DateTimeField(null=True, blank=True)

    objects = HostAgentQuerySet.as_manager()

    # Rows of agents silent this long are deleted (each agent start makes one) and no longer
    # shown: a host gone for a week is forgotten.
    FORGOTTEN_AFTER_S = 7 * 86400

    class Meta:
        ordering = ["name", "-heartbeat_at"]

    def __str__(self) -> str:
        return f"agent {self.agent_id} ({self.state})"

    @staticmethod
    def expiry_cutoff() -> datetime:
        return timezone.now() - timedelta(seconds=settings.SYSOPS_AGENT_EXPIRY_S)

    @property
    def is_gone(self) -> bool:
        return self.stopped_at is not None or self.heartbeat_at < self.expiry_cutoff()

    @property
    def state(self) -> str:
        if self.is_gone:
            return self.State.GONE
        return self.State.BUSY if self.running else self.State.ALIVE

    def gone_reason(self) -> str:
        """Why a run this agent held ended: said to the run's owner, in the run's reason."""
        if self.stopped_at is not None:
            when, what = self.stopped_at, "stopped"
        else:
            when, what = self.heartbeat_at, "stopped heartbeating"
        return (
            f"the agent on host {self.name} {what} at {when:%Y-%m-%d %H:%M:%S} UTC; "
            "its run could not finish"
        )


class RunQuerySet(models.QuerySet["Run"]):
    """Every change of a run's status, each one conditional update on the state it leaves, so
    two writers (a runner finishing, the agent's recovery, a cancel) can never both win:
    queued → running only from queued, a terminal state only from queued (cancel) or running.
    "0 rows changed" means someone else got there first; the first terminal state stays."""

    # --- which queued run an agent takes next: the one place that says so -----------------------
    def claimable(self, *, host_name: str) -> RunQuerySet:
        """Queued runs an agent on ``host_name`` may take: unpinned ones and those pinned to it."""
        return self.filter(status=Run.Status.QUEUED).filter(
            Q(pinned_host="") | Q(pinned_host=host_name)
        )

    def _fair_candidates(self, *, host_name: str, limit: int) -> list[int]:
        """The next ``limit`` runs ``host_name`` may take, in fair order: round-robin by owner.
        A queued run waits behind its owner's running runs and its owner's older queued ones
        (its turn), so a user with 20 queued runs takes turns with another user's single run
        instead of holding it back; among equal turns the oldest goes first. Anonymous runs
        take turns by client address. One pass over the queue (a window function, not a count
        per row)."""
        connection = connections[self.db]

        def sql_of(queryset: models.QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
            return queryset.order_by().query.get_compiler(using=self.db).as_sql()

        candidates, candidate_params = sql_of(
            self.claimable(host_name=host_name).values("id", "user_id", "client_addr")
        )
        running, running_params = sql_of(
            Run.objects.filter(status=Run.Status.RUNNING).values("user_id", "client_addr")
        )
        # The owner: the user, or the client address for runs queued without one (a loopback
        # install has no users: each address takes its turn).
        owner = (
            "COALESCE(CAST({0}.user_id AS TEXT),"
            " 'addr:' || COALESCE(CAST({0}.client_addr AS TEXT), ''))"
        )
        sql = (
            "SELECT t.id FROM (SELECT c.id, ROW_NUMBER() OVER"
            f" (PARTITION BY {owner.format('c')} ORDER BY c.id)"
            " + COALESCE(o.running, 0) AS turn"
            f" FROM ({candidates}) c LEFT JOIN"
            f" (SELECT {owner.format('b')} AS owner, COUNT(*) AS running"
            f" FROM ({running}) b GROUP BY {owner.format('b')}) o"
            f" ON o.owner = {owner.format('c')}) t"
            " ORDER BY t.turn, t.id LIMIT %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*candidate_params, *running_params, limit])
            return [int(row[0]) for row in cursor.fetchall()]

    def claim_next(self, *, by: str, host_name: str) -> int | None:
        """Move the next run ``host_name`` may take (in fair order) from queued to running, for
        the agent ``by``; None when there is none. Under PostgreSQL the first of the next few
        candidates that no other claim holds is locked (SKIP LOCKED: racing agents each take a
        different run without waiting, and a run claimed meanwhile is re-checked and passed
        over); SQLite's IMMEDIATE transactions serialise claims. The conditional update stays
        the guarantee either way: a run is claimed once."""
        with transaction.atomic(using=self.db):
            ids = self._fair_candidates(host_name=host_name, limit=CLAIM_CANDIDATES)
            if not ids:
                return None
            in_turn = Case(*(When(pk=pk, then=Value(i)) for i, pk in enumerate(ids)))
            run_id = (
                self.filter(pk__in=ids, status=Run.Status.QUEUED)
                .annotate(in_turn=in_turn)
                .order_by("in_turn")
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("id", flat=True)
                .first()
            )
            if run_id is None or not self.claim(run_id, by=by):
                return None
            return run_id

    def claim(self, run_id: int, *, by: str) -> bool:
        now = timezone.now()
        return bool(
            self.filter(pk=run_id, status=Run.Status.QUEUED).update(
                status=Run.Status.RUNNING, claimed_by=by, started_at=now, heartbeat_at=now
            )
        )

    def release(self, run_id: int) -> bool:
        """running → queued, for a run claimed but never handed to a runner (an agent that held
        it back for a timing run's turn and is stopping)."""
        return bool(
            self.filter(pk=run_id, status=Run.Status.RUNNING, runner_pid__isnull=True).update(
                status=Run.Status.QUEUED, claimed_by="", started_at=None, heartbeat_at=None
            )
        )

    def cancel_queued(self, run_id: int, *, by: Any = None) -> bool:
        """``by``: the user who cancelled it (None: anonymous, on a loopback install)."""
        return bool(
            self.filter(pk=run_id, status=Run.Status.QUEUED).update(
                status=Run.Status.CANCELLED,
                reason="cancelled before it started",
                finished_at=timezone.now(),
                cancelled_by=by,
            )
        )

    def request_cancel(self, run_id: int, *, by: Any = None) -> bool:
        return bool(
            self.filter(pk=run_id, status=Run.Status.RUNNING).update(
                cancel_requested=True, cancelled_by=by
            )
        )

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
# Runs an agent's claim considers at once, in fair order: more than agents ever race for one.
CLAIM_CANDIDATES = 32


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
    # Runs made together (the same parameters once on every live host) share it; blank: alone.
    group = models.CharField(max_length=32, blank=True, db_index=True)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.SET_NULL)
    # Who asked for it to stop, when someone did (the owner or a staff member).
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Where the request that queued it came from: the quota key of an install without users.
    client_addr = models.GenericIPAddressField(null=True, blank=True)
    # The one-time token of the form submission that created it: a second POST of the same
    # form (a double click) finds this run instead of queueing another.
    submission = models.CharField(max_length=64, null=True, blank=True, unique=True)

    # Who owns the run while it runs: the agent that claimed it and its runner process.
    claimed_by = models.CharField(max_length=255, blank=True)
    # Blank: any host's agent may claim the run; else only an agent whose host name is this one.
    pinned_host = models.CharField(max_length=255, blank=True, default="")
    runner_pid = models.IntegerField(null=True, blank=True)
    # The host uid the run's sandboxes ran as, leased for the run alone (sandbox/uids.py).
    sandbox_uid = models.BigIntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Live batches are numbered so a viewer can tell what its snapshot already holds.
    last_seq = models.IntegerField(default=0)
    # When the run reached each stage of its start (sysops/stages.py): {name: epoch ns}.
    stages = models.JSONField(default=dict, blank=True)
    # Runs that ran beside this one at some moment: its timings shared the CPUs with them.
    overlapped = models.JSONField(default=list, blank=True)

    # "Run again" (with or without changes) records the run it came from, to compare with it.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    # A run imported from another instance's bundle (sysops/bundle.py): shown read-only, never
    # queued or claimed; ``imported_from`` says where it came from (instance, run id, sha256).
    imported = models.BooleanField(default=False)
    imported_from = models.JSONField(default=dict, blank=True)

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
    def queue_position(self) -> int | None:
        """1 for the next run to start, oldest first; None when not queued."""
        if self.status != Run.Status.QUEUED:
            return None
        return Run.objects.filter(status=Run.Status.QUEUED, id__lt=self.pk).count() + 1

    @property
    def timeline(self) -> list[stages.Step]:
        return stages.timeline(self.stages)

    @property
    def stages_json(self) -> str:
        return json.dumps(self.stages, sort_keys=True)

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
    """A batch of trace events (zlib-compressed JSON list of event dicts, `stored_record`
    form), in order."""

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
        """Compact JSON in UTF-8 (orjson: the runner packs every event of a trace, and the
        standard encoder took ~4 µs an event, more than the parser)."""
        return zlib.compress(orjson.dumps(events), 1)

    def events(self) -> list[dict[str, Any]]:
        return orjson.loads(zlib.decompress(self.data))
