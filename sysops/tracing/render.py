"""One renderer per trace output, so that the page, the CLI and the downloads say the same thing.

- ``call_text``: an event as strace prints it, without the pid and time (``read(3, "x", 1) = 1
  <0.000002>``, ``wait4(-1,  <unfinished ...>``, ``+++ exited with 0 +++``). The strace download
  prefixes it with pid and time; the live pane shows it as the server sent it.
- ``live_record``: what a browser gets for one event: its fields and its ``text``.
- ``summary_lines``: the ``strace -c`` table as text, from a stored summary (the CLI).
- ``observer_sentence``: the observer effect in words, whatever is missing.
- ``eta_text``: the traced pass's time left, from its rate so far.
The summary's HTML is one template (``sysops/_trace_summary.html``), its CSV one exporter.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sysops.tracing.parse import TraceEvent

EventLike = TraceEvent | Mapping[str, Any]


def as_event(event: EventLike) -> TraceEvent:
    if isinstance(event, TraceEvent):
        return event
    return TraceEvent.from_dict({**event, "raw": event.get("raw", "")})


def call_text(event: TraceEvent) -> str:
    kind = event.kind
    if kind == "syscall":
        call = f"{event.name}({', '.join(event.args)}"
        if event.ret is None:
            # strace's own notation for a call that has not returned (yet, or ever).
            return f"{call}{', ' if event.args else ''} <unfinished ...>"
        line = f"{call}) = {event.ret}"
        if event.duration_s is not None:
            line += f" <{event.duration_s:.6f}>"
        return line
    if kind == "signal":
        if event.args == ["stopped"]:
            return f"--- stopped by {event.name} ---"
        return " ".join(["---", event.name, *event.args, "---"])
    if kind == "exit":
        return f"+++ exited with {event.retval} +++"
    if kind == "killed":
        core = " (core dumped)" if event.args else ""
        return f"+++ killed by {event.name}{core} +++"
    return event.raw


def strace_line(event: TraceEvent) -> str:
    """The full strace line: ``pid ts call``, for the download."""
    if event.kind not in ("syscall", "signal", "exit", "killed"):
        return event.raw
    prefix = "" if event.pid is None else f"{event.pid} "
    if event.ts is not None:
        prefix += f"{event.ts:.6f} "
    return prefix + call_text(event)


def stored_record(event: TraceEvent) -> dict[str, Any]:
    """What a trace chunk stores of an event: its fields (``TraceEvent.to_dict`` without
    ``raw``: the raw line would double the size and ``call_text`` rebuilds it). Built directly,
    not through to_dict: the runner stores every event of a trace, and this is its hot path."""
    fd_paths = event.fd_paths
    record = {
        "seq": event.seq,
        "pid": event.pid,
        "ts": event.ts,
        "kind": event.kind,
        "name": event.name,
        "args": event.args,  # serialised at once, never kept: no copy needed
        "ret": event.ret,
        "retval": event.retval,
        "errno": event.errno,
        "errmsg": event.errmsg,
        "duration_s": event.duration_s,
        "fd_paths": {str(key): path for key, path in fd_paths.items()} if fd_paths else {},
        "category": event.category,
        "cut_short": event.cut_short,
    }
    if event.harness:
        record["harness"] = True
    return record


def live_trace_state(trace: Mapping[str, Any]) -> dict[str, Any]:
    """A run's trace state for the page: everything but the summary (an HTML fragment of its
    own), with the observer effect already in words."""
    state = {k: v for k, v in trace.items() if k != "summary"}
    state["observer_text"] = observer_sentence(trace.get("observer"))
    if trace.get("status") == "tracing" and trace.get("tracing_since"):
        elapsed_s = time.time() - float(trace["tracing_since"])
        state["eta_text"] = eta_text(
            int(trace.get("events") or 0), trace.get("expected_events"), elapsed_s
        )
    return state


def live_record(event: EventLike) -> dict[str, Any]:
    parsed = as_event(event)
    record = parsed.to_dict()
    del record["raw"]  # ``text`` says it, and the fields rebuild it
    record["text"] = call_text(parsed)
    return record


def summary_lines(summary: Mapping[str, Any] | None) -> list[str]:
    if not summary or not summary.get("rows"):
        return []
    lines = [f"{'% time':>7} {'seconds':>11} {'usecs/call':>11} {'calls':>9} {'errors':>9} syscall"]
    for row in summary["rows"]:
        lines.append(
            f"{row['share_pct']:7.2f} {row['total_s']:11.6f} {row['avg_s'] * 1e6:11.0f}"
            f" {row['calls']:9d} {row['errors'] or '':>9} {row['name']}"
        )
    total = summary["total"]
    lines.append(
        f"{100:7.2f} {total['total_s']:11.6f} {'':>11} {total['calls']:9d}"
        f" {total['errors'] or '':>9} total"
    )
    return lines


def observer_sentence(observer: Mapping[str, Any] | None) -> str:
    """ "" when there is nothing to say; never formats a missing value."""
    if not observer:
        return ""
    slowdown = observer.get("slowdown")
    times = f"{slowdown:.1f}× slower" if slowdown is not None else "slowdown unknown"
    if observer.get("metric"):
        untraced, traced = observer.get("untraced_rate"), observer.get("traced_rate")
        if untraced is None or traced is None:
            return f"Observer effect on {observer['metric']}: not measured."
        return (
            f"Observer effect: this work runs for a fixed time, so compare its rate: "
            f"{observer['metric']} {untraced:,.0f} untraced, {traced:,.0f} traced ({times})."
        )
    untraced_s, traced_s = observer.get("untraced_work_s"), observer.get("traced_work_s")
    if untraced_s is None or traced_s is None:
        return "Observer effect: not measured."
    per_event = observer.get("per_event_us")
    each = f", about {per_event:.1f} µs per traced event" if per_event is not None else ""
    return (
        f"Observer effect: the same work took {untraced_s * 1e3:.1f} ms untraced and "
        f"{traced_s * 1e3:.1f} ms traced ({times}{each})."
    )


def eta_text(events: int, expected: int | None, elapsed_s: float) -> str:
    """The traced pass's remaining time, from its rate so far."""
    if not expected or events <= 0 or elapsed_s <= 0:
        return ""
    if events >= expected:
        return "traced pass: finishing"
    remaining_s = (expected - events) * elapsed_s / events
    return (
        f"traced pass: {events:,} of ~{expected:,} calls, about {duration_text(remaining_s)} left"
    )


def duration_text(seconds: float) -> str:
    """``350 ms``, ``42 s``, ``7 min``: an estimate's precision."""
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
