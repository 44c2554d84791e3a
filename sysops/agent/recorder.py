"""Persisting a run's events in batches, then publishing each batch once it is committed."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sysops import stages
from sysops.agent import partial
from sysops.batch import RunBatch
from sysops.dbretry import retry_db
from sysops.experiments.base import Chart
from sysops.live import RUNS_GROUP, run_group, runs_changed
from sysops.models import Host, Run, RunLog, SampleChunk, TraceChunk
from sysops.tracing.export import DownloadSizes
from sysops.tracing.parse import TraceEvent
from sysops.tracing.render import live_record, live_trace_state, stored_record
from sysops.tracing.search import chunk_index
from sysops.tracing.summary import Summary

log = logging.getLogger(__name__)
Publish = Callable[[str, dict[str, Any]], None]
FLUSH_INTERVAL_S = 0.1
HEARTBEAT_INTERVAL_S = 2.0
# A flush reads the cancel flag at most this often: a cancel is seen within about this, and the
# run's first batch (within this of the start) goes out one query sooner.
CANCEL_CHECK_INTERVAL_S = 0.25
MAX_LOG_CHARS = 4000
# A run keeps at most this many result rows and log lines: whatever a worker sends, its page
# renders in bounded time. Past a cap, one line says what was dropped.
MAX_RESULT_ROWS = 500
MAX_RESULT_BYTES = 2 << 20
MAX_LOG_LINES = 10_000
# A live batch carries at most this many trace lines (the newest); the rest are stored, counted
# and downloadable, so a fast trace never makes the server fall behind or flood a browser.
LIVE_TRACE_LINES = 50
SUMMARY_INTERVAL_S = 1.0


class RunRecorder:
    """Collects what changed since the last flush; ``flush`` writes it in one transaction."""

    def __init__(self, run: Run, publish: Publish) -> None:
        self.run = run
        self._publish = publish
        self._samples: list[list[Any]] = []
        self._logs: list[RunLog] = []
        self._changed: set[str] = set()
        # The first batch waits for the first sample or progress (or the usual interval): one
        # transaction, not two, before the first figure.
        self._last_flush = self._cancel_checked = time.monotonic()
        self._trace_pending: list[TraceEvent] = []
        self._summary = Summary()
        self._download_sizes = DownloadSizes(seed=run.pk or 0)
        self._summary_sent = 0.0
        self._status_changed = False
        self.trace_total = 0
        self._log_lines = 0
        self._rows_dropped = 0
        self._rows_bytes = 0
        # The measured pass ended as it should: its rows are whole, whatever a later pass does.
        self.measured_complete = False
        self._stages: dict[str, int] = {}
        if run.started_at is not None:
            self.stage("claimed", int(run.started_at.timestamp() * 1e9))
        # The first sample or progress is flushed at once: a person waits for it.
        self._first_live = "none"  # → "pending" → "sent"

    def stage(self, name: str, at_ns: int | None = None) -> None:
        """The run reached stage ``name`` (sysops.stages) now or at ``at_ns``; stored at the next
        flush."""
        if name not in self.run.stages and name not in self._stages:
            self._stages[name] = at_ns or stages.now_ns()

    # --- collecting -------------------------------------------------------------------------
    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("sample", "progress") and self._first_live == "none":
            self._first_live = "pending"
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
            self._add_rows(event["rows"])
        elif kind == "hello":
            self.stage("hello")
            # The sandbox has a hostname of its own: the host is the one this runner runs on,
            # under the name its agent registered (SYSOPS_HOST_NAME).
            fingerprint = {**event["host"], "hostname": settings.SYSOPS_HOST_NAME}
            self.run.host = Host.for_fingerprint(fingerprint)
            self._changed.add("host")
        elif kind == "log":
            self.log(str(event.get("message", "")), level=str(event.get("level", "info")))
        elif kind == "error":
            self.log(str(event.get("message", "")), level=RunLog.Level.ERROR)

    def _add_rows(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            size = len(json.dumps(row))
            if (
                len(self.run.results) >= MAX_RESULT_ROWS
                or self._rows_bytes + size > MAX_RESULT_BYTES
            ):
                if not self._rows_dropped:
                    self.log(
                        f"more than {MAX_RESULT_ROWS} result rows or {MAX_RESULT_BYTES:,} bytes "
                        "of them: the rest are dropped",
                        level=RunLog.Level.ERROR,
                        source="runner",
                    )
                self._rows_dropped += 1
                continue
            self.run.results.append(row)  # in place: no list rebuilt per event
            self._rows_bytes += size
            self._changed.add("results")

    def log(self, message: str, *, level: str = RunLog.Level.INFO, source: str = "worker") -> None:
        if level not in RunLog.Level.values:
            level = RunLog.Level.INFO
        self._log_lines += 1
        if self._log_lines > MAX_LOG_LINES:
            return
        if self._log_lines == MAX_LOG_LINES:
            level, source = RunLog.Level.ERROR, "runner"
            message = f"more than {MAX_LOG_LINES} log lines: the rest are not kept"
        self._logs.append(
            RunLog(run=self.run, seq=0, level=level, source=source, message=message[:MAX_LOG_CHARS])
        )

    def on_trace(self, events: list[TraceEvent]) -> None:
        if events and "t0" not in self.run.trace:
            self.set_trace(t0=events[0].ts)  # times on the page are relative to this
        for event in events:
            self._summary.add(event)
            self._trace_pending.append(event)
        self.trace_total += len(events)
        self._download_sizes.add(events)

    def save_later(self, *fields: str) -> None:
        """Fields of the run changed by the runner itself, written with the next batch."""
        self._changed.update(fields)

    def set_trace(self, **fields: Any) -> None:
        """Update the run's trace state (status, reason, which pass, observer effect)."""
        self.run.trace = {**self.run.trace, **fields}
        self._changed.add("trace")

    # --- writing ----------------------------------------------------------------------------
    def due(self) -> bool:
        return (
            self._first_live == "pending" or time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S
        )

    def pending(self) -> bool:
        return bool(
            self._samples
            or self._logs
            or self._changed
            or self._trace_pending
            or self._status_changed
            or bool(self._stages)
        )

    def flush(self, *, force: bool = False) -> bool:
        """Write what changed (and a heartbeat); returns True when a cancel was requested."""
        now = time.monotonic()
        if not force and not self.pending() and now - self._last_flush < HEARTBEAT_INTERVAL_S:
            return False
        self._last_flush = now
        samples, logs, changed = self._samples, self._logs, self._changed
        self._samples, self._logs, self._changed = [], [], set()
        status_changed, self._status_changed = self._status_changed, False
        trace, self._trace_pending = self._trace_pending, []
        reached, self._stages = self._stages, {}
        first_live = self._first_live == "pending"
        if first_live:
            self._first_live = "sent"
        if trace:
            self.run.trace = {
                **self.run.trace,
                "events": self.trace_total,
                "summary": self._summary.to_dict(),
                "download_bytes": self._download_sizes.to_dict(),
            }
            changed.add("trace")
        base_seq = self.run.last_seq
        check_cancel = force or now - self._cancel_checked >= CANCEL_CHECK_INTERVAL_S
        if check_cancel:
            self._cancel_checked = now
        return retry_db(
            lambda: self._write(
                base_seq,
                samples,
                logs,
                changed,
                trace,
                status_changed,
                reached,
                first_live,
                check_cancel,
            ),
            what=f"run {self.run.pk}: storing a batch",
        )

    def _write(
        self,
        base_seq: int,
        samples: list[list[Any]],
        logs: list[RunLog],
        changed: set[str],
        trace: list[TraceEvent],
        status_changed: bool,
        reached: dict[str, int],
        first_live: bool,
        check_cancel: bool,
    ) -> bool:
        """One flush's transaction; repeated whole if the database was busy or unreachable.
        Returns whether a cancel was requested (read only when ``check_cancel``)."""
        with transaction.atomic():
            seq = base_seq + 1
            self.run.last_seq = seq
            self.run.heartbeat_at = timezone.now()
            if samples:
                SampleChunk.objects.create(run=self.run, seq=seq, samples=samples)
            if trace:
                TraceChunk.objects.create(
                    run=self.run,
                    seq=seq,
                    count=len(trace),
                    data=TraceChunk.pack([stored_record(e) for e in trace]),
                    start=self.trace_total - len(trace),
                    index=chunk_index(trace),
                )
            for entry in logs:
                entry.pk, entry.seq = None, seq
            RunLog.objects.bulk_create(logs)
            fields = {"last_seq", "heartbeat_at", *changed}
            self.run.save(update_fields=sorted(fields))
            if reached:
                stages.mark(self.run.pk, reached)
            cancel = check_cancel and (
                Run.objects.values_list("cancel_requested", flat=True).get(pk=self.run.pk)
            )
            batch = self._batch(seq, samples, logs, changed, trace, status_changed)
            transaction.on_commit(lambda: self._send(batch, first_live=first_live))
        if reached:
            self.run.stages = {**reached, **self.run.stages}
        return cancel

    def _send(self, batch: RunBatch, *, first_live: bool = False) -> None:
        if first_live:
            self.stage("first_stored")
        # Rendered here, once, after the commit: viewers only forward it. A fragment that
        # fails to render must not end the run; the data is stored, a reload shows it.
        try:
            batch = batch.rendered()
        except Exception:  # noqa: BLE001
            log.exception("run %s: batch %s did not render", self.run.pk, batch.seq)
        self._publish(run_group(self.run.pk), batch.to_message())
        if first_live:
            self.stage("first_published")
        if batch.status_changed:
            self._publish(RUNS_GROUP, runs_changed(self.run.pk))

    def keep_partial(self, charts: list[Chart]) -> None:
        """A run stopping early keeps what it measured, marked partial: the rows its probe
        sent, or else rows made from its stored chart points. A run stopped in its traced
        pass has whole figures: nothing is marked."""
        self.flush(force=True)
        if self.measured_complete:
            return
        if self.run.results:
            partial.mark_partial(self.run.results)
        else:
            samples = SampleChunk.objects.filter(run=self.run).values_list("samples", flat=True)
            self._add_rows(partial.rows_from_samples((s for c in samples for s in c), charts))
        self._changed.add("results")

    def finish(self, status: str, reason: str) -> Run:
        """Store what is pending, then end the run as ``status`` unless something else ended
        it first (the agent's recovery, say): the first terminal state stays, and the final
        batch tells viewers whichever it is."""
        self.flush(force=True)
        fields = {"progress": 1.0} if status == Run.Status.SUCCEEDED else {}
        if not retry_db(
            lambda: Run.objects.finish(self.run.pk, status, reason, **fields),
            what=f"run {self.run.pk}: storing its end",
        ):
            self.log(
                f"the run had already ended; this runner's verdict ({status}: {reason}) was not "
                "recorded",
                level=RunLog.Level.WARNING,
                source="runner",
            )
        stored = retry_db(
            lambda: Run.objects.only("status", "reason", "finished_at", "progress").get(
                pk=self.run.pk
            ),
            what=f"run {self.run.pk}",
        )
        for name in ("status", "reason", "finished_at", "progress"):
            setattr(self.run, name, getattr(stored, name))
        self._status_changed = True
        self.flush(force=True)
        if self._stages:  # reached while the last batch went out
            stages.mark(self.run.pk, self._stages)
            self._stages = {}
        return self.run

    def _batch(
        self,
        seq: int,
        samples: list[list[Any]],
        logs: list[RunLog],
        changed: set[str],
        trace: list[TraceEvent],
        status_changed: bool,
    ) -> RunBatch:
        run = self.run
        trace_frame = None
        if "trace" in changed:
            now = time.monotonic()
            final = status_changed or run.trace.get("status") not in (None, "tracing")
            trace_frame = {
                "state": live_trace_state(run.trace),
                "events": [live_record(e) for e in trace[-LIVE_TRACE_LINES:]],
                # The batch's events not sent live: the pane marks the gap where they were.
                "skipped": max(0, len(trace) - LIVE_TRACE_LINES),
            }
            if final or now - self._summary_sent >= SUMMARY_INTERVAL_S:
                self._summary_sent = now
                trace_frame["summary"] = run.trace.get("summary")
        return RunBatch(
            run=run.pk,
            seq=seq,
            status=run.status,
            status_changed=status_changed,
            reason=run.reason,
            unsandboxed=run.unsandboxed,
            unbounded=run.unbounded,
            progress=run.progress,
            progress_message=run.progress_message,
            phase=run.phase,
            samples=samples,
            logs=[{"level": e.level, "source": e.source, "message": e.message} for e in logs],
            # The table arrives once, with the final status: re-sending every row on each
            # change would cost the runner and every viewer the square of the row count.
            results=run.results if status_changed else None,
            host=run.host.fingerprint if "host" in changed and run.host is not None else None,
            trace=trace_frame,
        )
