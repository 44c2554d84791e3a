"""Persisting a run's events in batches, then publishing each batch once it is committed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from sysops.live import RUNS_GROUP, run_group
from sysops.models import Host, Run, RunLog, SampleChunk

Publish = Callable[[str, dict[str, Any]], None]
FLUSH_INTERVAL_S = 0.1
HEARTBEAT_INTERVAL_S = 2.0
MAX_LOG_CHARS = 4000


class RunRecorder:
    """Collects what changed since the last flush; ``flush`` writes it in one transaction."""

    def __init__(self, run: Run, publish: Publish) -> None:
        self.run = run
        self._publish = publish
        self._samples: list[list[Any]] = []
        self._logs: list[RunLog] = []
        self._changed: set[str] = set()
        self._last_flush = 0.0
        self.error_messages: list[str] = []
        self.done = False

    # --- collecting -------------------------------------------------------------------------
    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "sample":
            self._samples.append([event["series"], event["x"], event["y"]])
        elif kind == "progress":
            self.run.progress = float(event["value"])
            self.run.progress_message = str(event.get("message", ""))[:200]
            self._changed |= {"progress", "progress_message"}
        elif kind == "phase":
            self.run.phase = str(event.get("name", ""))[:64]
            self._changed.add("phase")
        elif kind == "result":
            self.run.results = [*self.run.results, *event["rows"]]
            self._changed.add("results")
        elif kind == "hello":
            self.run.host = Host.for_fingerprint(event["host"])
            self._changed.add("host")
        elif kind == "log":
            self.log(str(event.get("message", "")), level=str(event.get("level", "info")))
        elif kind == "error":
            message = str(event.get("message", ""))
            self.error_messages.append(message)
            self.log(message, level=RunLog.Level.ERROR)
        elif kind == "done":
            self.done = True

    def log(self, message: str, *, level: str = RunLog.Level.INFO, source: str = "worker") -> None:
        if level not in RunLog.Level.values:
            level = RunLog.Level.INFO
        self._logs.append(
            RunLog(run=self.run, seq=0, level=level, source=source, message=message[:MAX_LOG_CHARS])
        )

    # --- writing ----------------------------------------------------------------------------
    def due(self) -> bool:
        return time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S

    def pending(self) -> bool:
        return bool(self._samples or self._logs or self._changed)

    def flush(self, *, force: bool = False) -> bool:
        """Write what changed (and a heartbeat); returns True when a cancel was requested."""
        now = time.monotonic()
        if not force and not self.pending() and now - self._last_flush < HEARTBEAT_INTERVAL_S:
            return False
        self._last_flush = now
        samples, logs, changed = self._samples, self._logs, self._changed
        self._samples, self._logs, self._changed = [], [], set()
        with transaction.atomic():
            seq = self.run.last_seq + 1
            self.run.last_seq = seq
            self.run.heartbeat_at = timezone.now()
            if samples:
                SampleChunk.objects.create(run=self.run, seq=seq, samples=samples)
            for entry in logs:
                entry.seq = seq
            RunLog.objects.bulk_create(logs)
            fields = {"last_seq", "heartbeat_at", *changed}
            self.run.save(update_fields=sorted(fields))
            cancel = Run.objects.filter(pk=self.run.pk).values_list("cancel_requested", flat=True)[
                0
            ]
            message = self._batch(seq, samples, logs, changed)
            transaction.on_commit(lambda: self._send(message))
        return cancel

    def _send(self, message: dict[str, Any]) -> None:
        self._publish(run_group(self.run.pk), message)
        if message["status_changed"]:
            self._publish(RUNS_GROUP, {"type": "runs.changed", "run": self.run.pk})

    def finish(self, status: str, reason: str) -> Run:
        self.run.status = status
        self.run.reason = reason[:MAX_LOG_CHARS]
        self.run.finished_at = timezone.now()
        if status == Run.Status.SUCCEEDED:
            self.run.progress = 1.0
        self._changed |= {"status", "reason", "finished_at", "progress"}
        self.flush(force=True)
        return self.run

    def _batch(
        self, seq: int, samples: list[list[Any]], logs: list[RunLog], changed: set[str]
    ) -> dict[str, Any]:
        run = self.run
        message: dict[str, Any] = {
            "type": "run.batch",
            "run": run.pk,
            "seq": seq,
            "status": run.status,
            "reason": run.reason,
            "unsandboxed": run.unsandboxed,
            "progress": run.progress,
            "progress_message": run.progress_message,
            "phase": run.phase,
            "samples": samples,
            "logs": [{"level": e.level, "source": e.source, "message": e.message} for e in logs],
            "status_changed": "status" in changed,
        }
        if "results" in changed or "status" in changed:
            message["results"] = run.results
        if "host" in changed and run.host is not None:
            message["host"] = run.host.fingerprint
        return message
