"""One live message: ``RunBatch``, what changed in a run since the last batch.

The recorder builds it (in the runner, after the batch is committed), renders its HTML once and
publishes it; every viewer's consumer sends that same HTML and the JSON frames, without
rendering anything per viewer. A late viewer's snapshot is rendered by the same template from
the stored run. Every field is required: a batch that lost one fails to build or to decode.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from django.template.loader import render_to_string

from sysops.models import Host, Run

MESSAGE_TYPE = "run.batch"


@dataclass(frozen=True)
class RunBatch:
    run: int
    seq: int
    status: str
    status_changed: bool
    reason: str
    unsandboxed: bool
    unbounded: bool
    progress: float
    progress_message: str
    phase: str
    samples: list[list[Any]]  # [series, x, y]
    logs: list[dict[str, str]]  # {level, source, message}
    results: list[dict[str, Any]] | None  # the whole table with the final status, else None
    host: dict[str, Any] | None  # the fingerprint when it arrived, else None
    trace: dict[str, Any] | None  # {state, events, summary?} when the trace changed
    html: str = ""  # the fragments this batch changes, rendered once by the publisher

    # Shallow copies, not dataclasses.asdict: asdict deep-copies every sample and trace line of
    # the batch, twice a batch, and a runner publishes ten batches a second of a busy trace.
    def rendered(self) -> RunBatch:
        return replace(self, html=render_batch(self))

    def to_message(self) -> dict[str, Any]:
        return {"type": MESSAGE_TYPE, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> RunBatch:
        return cls(**{f.name: message[f.name] for f in fields(cls)})

    def frames(self) -> list[dict[str, Any]]:
        """The JSON frames for the browser's charts and trace pane."""
        out: list[dict[str, Any]] = []
        if self.samples:
            out.append({"kind": "samples", "seq": self.seq, "samples": self.samples})
        if self.trace:
            # The summary travels as HTML (see render_batch), rendered by the one template.
            out.append({"kind": "trace", **{k: v for k, v in self.trace.items() if k != "summary"}})
        return out


class RunView:
    """What the run fragments read of a run, from a batch instead of a database row."""

    def __init__(self, batch: RunBatch) -> None:
        self.pk = batch.run
        self.status = batch.status
        self.reason = batch.reason
        self.unsandboxed = batch.unsandboxed
        self.unbounded = batch.unbounded
        self.progress = batch.progress
        self.progress_message = batch.progress_message
        self.phase = batch.phase
        self.results = batch.results or []
        self.host = HostView(batch.host) if batch.host else None
        self.is_terminal = batch.status in Run.TERMINAL


class HostView:
    def __init__(self, fingerprint: dict[str, Any]) -> None:
        self.fingerprint = fingerprint


def warm_up_rendering() -> None:
    """Render the batch template once, so that it and its includes are compiled before a run's
    first batch (a spare runner does this while it waits: ~180 ms on a busy host, measured)."""
    run = Run(experiment="", params={}, status=Run.Status.RUNNING, progress=0.5)
    run.host = Host(fingerprint={"hostname": "", "kernel": {"release": ""}})  # the first batch's
    render_to_string(
        "sysops/_run_live.html",
        {
            "run": run,
            "logs": [{"level": "info", "source": "runner", "message": ""}],
            "results_changed": True,
            "trace_summary": None,
        },
    )


def render_batch(batch: RunBatch) -> str:
    return render_to_string(
        "sysops/_run_live.html",
        {
            "run": RunView(batch),
            "logs": batch.logs,
            "results_changed": batch.results is not None,
            "trace_summary": (batch.trace or {}).get("summary"),
        },
    )
