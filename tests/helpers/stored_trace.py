"""A big stored trace without tracing for minutes: strace lines of a known workload, parsed by
the real parser and stored by the real recorder, batch by batch as a runner flushes them."""

from __future__ import annotations

from collections.abc import Iterator

from sysops.agent.recorder import RunRecorder
from sysops.models import Run
from sysops.tracing.parse import TraceParser

T0_S = 1_800_000_000.0
STEP_S = 0.00001  # one call every 10 µs: 100k events per second of trace
PIDS = (101, 102)
ENOENT = "-1 ENOENT (No such file or directory)"
FIRST_CALL = f'openat(AT_FDCWD, "/first-call", O_RDONLY) = {ENOENT}'


def workload_lines(count: int) -> Iterator[str]:
    """``count`` strace lines (-f -ttt -T -yy): a getppid loop, a write to /dev/null every 50th
    call, a failed openat every 1,000th, from two pids taking turns every 10,000 calls; the first
    line is an openat of /first-call."""
    for i in range(count):
        pid = PIDS[(i // 10_000) % 2]
        ts = T0_S + i * STEP_S
        if i == 0:
            call = FIRST_CALL
        elif i % 1000 == 0:
            call = f'openat(AT_FDCWD, "/missing/{i}", O_RDONLY) = {ENOENT}'
        elif i % 50 == 0:
            call = 'write(1</dev/null<char 1:3>>, "x", 1) = 1'
        else:
            call = "getppid() = 1"
        yield f"{pid} {ts:.6f} {call} <0.000002>\n"


def store_trace(run: Run, count: int, *, batch_events: int = 3000) -> int:
    """Parse and store ``count`` workload events for ``run``; returns the events stored."""
    recorder = RunRecorder(run, lambda group, message: None)
    parser = TraceParser()
    lines: list[str] = []
    for line in workload_lines(count):
        lines.append(line)
        if len(lines) == batch_events:
            recorder.on_trace(parser.feed("".join(lines)))
            recorder.flush(force=True)
            lines.clear()
    recorder.on_trace(parser.feed("".join(lines)) + parser.close())
    recorder.flush(force=True)
    return recorder.trace_total
