"""strace around the sandbox: a FIFO that a thread of its own drains, parses and filters.

strace runs outside the sandbox (it wraps bubblewrap) as the sandbox uid and writes its text to
the FIFO, which only that uid (and the root runner) can reach: its path shows in strace's command
line, so a world-writable FIFO would let any local user write fake syscalls into a stored trace.
An inherited pipe (``-o /proc/self/fd/N``) would have no path, but strace cannot close it before
it execs bubblewrap, so the worker would inherit it and could write to it itself. The thread
keeps the pipe empty however slowly the rest of the runner goes, so a tracee is never blocked
by a slow database or browser. Parsed events that belong to the experiment (between the
worker's markers) wait in a queue for the runner's next flush.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import os
import queue
import select
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sysops.tracing import scope
from sysops.tracing.filter import MarkerFilter
from sysops.tracing.parse import TraceEvent, TraceParser

STRACE = "/usr/bin/strace"
TASKSET = "/usr/bin/taskset"
READ_CHUNK_BYTES = 1 << 16
POLL_S = 0.05
# How long the reader lets lines gather in the FIFO after a read that emptied it (see drain):
# about 100 reads a second instead of two wake-ups per traced call.
BATCH_WAIT_S = 0.01
# The FIFO's buffer: lines for BATCH_WAIT_S at the fastest strace writes (~50k lines/s of
# ~120 bytes is 60 KB), with room to spare, so strace does not block on a full pipe.
PIPE_BYTES = 1 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# Strings are cut at this many bytes: enough to recognise a payload, not enough to flood.
STRING_BYTES = 64


def strace_argv(
    output: Path | str, filter_args: list[str] | tuple[str, ...] = (), cpu: int | None = None
) -> tuple[str, ...]:
    """The tracer's argv, writing to ``output`` (the FIFO; a benchmark's peer uses the same
    flags). With ``cpu``, tracer and tracees share that one CPU. Every traced call stops the
    tracee and wakes strace: across CPUs of a VM each wake-up is an IPI, and
    `bench/tracing_cost.py` measured ~100 µs per traced call against ~20 µs pinned."""
    strace = (
        STRACE,
        "-f",
        *filter_args,
        "-ttt",
        "-T",
        "-yy",
        "-s",
        str(STRING_BYTES),
        "-o",
        str(output),
    )
    if cpu is None or not os.path.exists(TASKSET):
        return strace
    return (TASKSET, "--cpu-list", str(cpu), *strace)


def open_fifo(path: Path) -> int:
    """The reading end of the tracer's FIFO, non-blocking, its buffer enlarged."""
    # Read-write: opening never blocks, and the pipe never reports EOF while strace starts.
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # a bigger pipe is a margin, not a need
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
    return fd


def drain(fd: int, stop: threading.Event, on_data: Callable[[bytes], None]) -> None:
    """Read ``fd`` (non-blocking) into ``on_data`` until ``stop`` is set and nothing is left.

    strace writes each line in two writes (the call's entry, then its end), and every write
    that finds this thread waiting in select wakes it: a wake-up that the tracer pays for,
    twice per traced call, before its tracee may go on. So after a read that did not fill the
    buffer, the thread waits BATCH_WAIT_S without listening, and lines gather in the pipe to
    be read many at a time."""
    while True:
        readable, _, _ = select.select([fd], [], [], POLL_S)
        if readable:
            try:
                data = os.read(fd, READ_CHUNK_BYTES)
            except BlockingIOError:
                continue
            on_data(data)
            if len(data) < READ_CHUNK_BYTES:
                time.sleep(BATCH_WAIT_S)
        elif stop.is_set():
            break  # stopped, and nothing left in the pipe


def keep_off_cpu(cpu: int) -> None:
    """The calling thread runs on any of its CPUs but ``cpu`` (if it has another)."""
    others = os.sched_getaffinity(0) - {cpu}
    if others:
        os.sched_setaffinity(0, others)


class TraceCapture:
    def __init__(
        self,
        parent_dir: Path,
        *,
        owner_uid: int,
        trace_set: str = "",
        fault: scope.Fault | None = None,
    ) -> None:
        """``owner_uid``: the uid strace runs as (the run's sandbox uid). ``trace_set``,
        ``fault``: what to trace and inject (:mod:`sysops.tracing.scope`, already validated)."""
        self._filter_args = scope.strace_filter_args(trace_set, fault)
        self._marker_only = scope.marker_only(fault.syscall if fault else trace_set)
        self._dir = Path(tempfile.mkdtemp(prefix="sysops-trace-", dir=parent_dir))
        self.fifo = self._dir / f"{os.urandom(8).hex()}.strace"
        os.mkfifo(self.fifo, 0o600)
        os.chmod(self._dir, 0o700)
        if owner_uid != os.geteuid():
            os.chown(self.fifo, owner_uid, owner_uid)
            os.chown(self._dir, owner_uid, owner_uid)
        self._fd = open_fifo(self.fifo)
        self._avoid_cpu: int | None = None
        self._events: queue.SimpleQueue[list[TraceEvent]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._parser = TraceParser()
        self.filter = MarkerFilter(marker_only=self._marker_only)
        self._thread = threading.Thread(target=self._drain, name="trace-reader", daemon=True)
        self._thread.start()

    def watch_events_pipe(self, fd: int) -> None:
        """The worker's events pipe (either end): its writes are the harness's, not the
        experiment's. Call before the tracer starts."""
        self.filter = MarkerFilter(
            events_pipe=f"pipe:[{os.fstat(fd).st_ino}]", marker_only=self._marker_only
        )

    def wrapper(self, cpu: int | None = None) -> tuple[str, ...]:
        """strace's argv; with ``cpu``, tracer and tracees share that one CPU, and the reader
        thread keeps off it, so parsing never takes the traced work's CPU."""
        self._avoid_cpu = cpu
        return strace_argv(self.fifo, self._filter_args, cpu)

    def take(self) -> list[TraceEvent]:
        """Events parsed since the last call."""
        taken: list[TraceEvent] = []
        while True:
            try:
                taken += self._events.get_nowait()
            except queue.Empty:
                return taken

    def finish(self) -> list[TraceEvent]:
        """After the tracer exited: drain what is left, flush the parser, return the rest."""
        self._stop.set()
        self._thread.join()
        return self.take()

    def close(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
        os.close(self._fd)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _drain(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")

        def parse(data: bytes) -> None:
            if self._avoid_cpu is not None:
                keep_off_cpu(self._avoid_cpu)  # this thread only
                self._avoid_cpu = None
            self._publish(self._parser.feed(decoder.decode(data)))

        drain(self._fd, self._stop, parse)
        self._publish(self._parser.feed(decoder.decode(b"", final=True)) + self._parser.close())

    def _publish(self, events: list[TraceEvent]) -> None:
        kept = self.filter.feed(events)
        if kept:
            self._events.put(kept)
