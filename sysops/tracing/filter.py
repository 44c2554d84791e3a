"""Keep only the experiment's part of a trace.

:class:`MarkerFilter` drops everything before the begin marker (interpreter and sandbox
start-up), the markers themselves, and everything after the end marker. Between them it keeps
the marking process and every process or thread first seen after the begin marker — its
children and threads — but not processes that were already running, such as the sandbox's init
waiting for its child.

Children are recognised by being new, not by the pid that ``clone`` returned: inside the
sandbox's pid namespace ``clone`` returns the namespace's pid (2, 3, ...) while strace prefixes
lines with the host's pid, so the two never match. And with ``-f`` a child's first calls are
often printed before its parent's ``clone`` even returns. A process is "already running" if
any of its lines came before the begin marker — including the first half of a call that only
returns inside the window (the sandbox's init in wait4), which the parser hands over merged,
with the start time of its first half.

Within the window it marks (``harness=True``), rather than drops, what the worker does for
itself: a thread's calls between its harness markers (host facts, lazy imports; see
``sysops.worker.markers``) and every write to the events pipe, recognised by the pipe's inode
in strace's ``-yy`` decoration. The page hides them unless asked and the summary leaves them
out, so the trace and its error count are the experiment's.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator

from sysops.tracing.markers import marker_of
from sysops.tracing.parse import TraceEvent

_SYSCALL_NAME = re.compile(r"[a-z0-9_]+\Z")
_STRACE_CLASS = re.compile(r"%[a-z_]+\Z")
# How the worker's events reach the runner: a write (or writev) to the events pipe.
EMIT_SYSCALLS = frozenset({"write", "writev"})


class MarkerFilter:
    """Incremental begin/end marker filter; feed it the parser's events in order.

    ``began`` and ``ended`` tell whether the markers were seen: a trace that never began means
    the experiment never reached its work (or the trace set left the markers out).
    """

    def __init__(
        self, *, events_pipe: str | None = None, marker_only: Collection[str] = ()
    ) -> None:
        """``events_pipe``: the events pipe as ``-yy`` decorates it (``pipe:[123]``), whose
        writes are the harness's. ``marker_only``: syscalls traced only because the markers are
        made of them (``access`` when the chosen trace set leaves it out): dropped unless they
        are markers."""
        self.began = False
        self.ended = False
        self._running_before: set[int] = set()
        self._begin_ts: float | None = None
        self._events_pipe = events_pipe
        self._marker_only = frozenset(marker_only)
        self._in_harness: dict[int | None, int] = {}

    def feed(self, events: Iterable[TraceEvent]) -> list[TraceEvent]:
        """The events of this batch that belong to the experiment."""
        return [event for event in events if self.keep(event)]

    def keep(self, event: TraceEvent) -> bool:
        """Whether one event belongs to the experiment (events must come in parser order)."""
        if self.ended:
            return False
        pid = event.pid
        if not self.began:
            if marker_of(event) == "begin":
                self.began = True
                self._begin_ts = event.ts
                if pid is not None:
                    self._running_before.discard(pid)
            elif pid is not None:
                if event.kind in ("exit", "killed"):
                    # Gone before the work began: a new process may reuse the number.
                    self._running_before.discard(pid)
                else:
                    self._running_before.add(pid)
            return False
        if pid in self._running_before:
            return False
        if event.ts is not None and self._begin_ts is not None and event.ts < self._begin_ts:
            # A call that started before the marker: its process was already running.
            if pid is not None:
                self._running_before.add(pid)
            return False
        marker = marker_of(event)
        if marker is not None:
            if marker == "end":
                self.ended = True
            elif marker == "harness-begin":
                self._in_harness[pid] = self._in_harness.get(pid, 0) + 1
            elif marker == "harness-end" and self._in_harness.get(pid):
                self._in_harness[pid] -= 1
            return False
        if event.name in self._marker_only and event.kind == "syscall":
            return False
        if self._in_harness.get(pid) or (
            event.name in EMIT_SYSCALLS
            and self._events_pipe is not None
            and event.fd_paths.get(0) == self._events_pipe
        ):
            event.harness = True
        return True


def between_markers(events: Iterable[TraceEvent]) -> Iterator[TraceEvent]:
    """The experiment's events from a whole trace (see :class:`MarkerFilter`)."""
    marker_filter = MarkerFilter()
    for event in events:
        if marker_filter.keep(event):
            yield event
        elif marker_filter.ended:
            return
