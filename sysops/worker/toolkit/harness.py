"""A forked child process (a server, or a client) that the probe drives: the pattern every
two-process experiment needs (an echo server, a TCP peer, a spawned reader).

The child runs ``main(ctx)``; it talks to the parent over two pipes: ``control`` (parent →
child; the parent closing it means "stop", and so does the parent dying) and ``report`` (child
→ parent; JSON lines). Its first line is its "ready" message (a port, say), which
``Child.start`` waits for; ``main``'s return value is its final line, which ``stop`` returns.
No signals are needed for either, so nothing here depends on being outside a pid namespace.
The child dies with the parent (PR_SET_PDEATHSIG) and keeps none of the parent's descriptors
but its pipes (a copy of the worker's event fd held there would keep the runner from seeing the
worker's end of output).
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sysops.worker.toolkit.libc import die_with_parent

START_TIMEOUT_S = 5.0
EXIT_TIMEOUT_S = 3.0
WAIT_POLL_S = 0.01


@dataclass
class ChildContext:
    """What ``main`` gets in the child."""

    control_fd: int  # readable; EOF means the parent wants the child to stop
    report_fd: int

    def report(self, obj: Mapping[str, Any]) -> None:
        write_json_line(self.report_fd, obj)

    def stop_requested(self, timeout_s: float = 0.0) -> bool:
        """True once the parent has closed the control pipe (waits up to ``timeout_s``)."""
        readable, _, _ = select.select([self.control_fd], [], [], timeout_s)
        return bool(readable) and os.read(self.control_fd, 1) == b""


ChildMain = Callable[[ChildContext], Mapping[str, Any] | None]


@dataclass
class Child:
    """A forked child, seen from the parent."""

    pid: int
    name: str
    control_fd: int  # write end: closing it tells the child to stop
    report_fd: int  # read end: JSON lines from the child
    ready: dict[str, Any] = field(default_factory=dict)  # the child's first report
    notes: list[str] = field(default_factory=list)  # what went wrong with the process itself
    exit_code: int | None = None
    _reaped: bool = False

    @classmethod
    def start(
        cls,
        main: ChildMain,
        *,
        name: str,
        keep_fds: Iterable[int] = (),
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> Child:
        """Fork, run ``main`` in the child, and wait for its first report (its ready line).
        ``main`` must call ``ctx.report(...)`` once when ready. Raises RuntimeError with the
        child's own error when it fails to get ready."""
        control_r, control_w = os.pipe2(os.O_CLOEXEC)
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        keep = {0, 1, 2, control_r, report_w, *keep_fds}
        parent_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                status = _child_main(main, parent_pid, keep, control_r, report_w)
            finally:
                # Never return into the parent's stack (a test runner, the worker's error
                # handling) and never flush the parent's inherited stdio buffers twice.
                os._exit(status)
        os.close(control_r)
        os.close(report_w)
        child = cls(pid=pid, name=name, control_fd=control_w, report_fd=report_r)
        first = child.read_report(start_timeout_s)
        if first is None or "error" in first:
            child.kill_if_running()
            detail = (first or {}).get("error") or "; ".join(child.notes) or "nothing reported"
            raise RuntimeError(f"the {name} did not start: {detail}")
        child.ready = first
        return child

    @classmethod
    def run(
        cls, work: Callable[[], Mapping[str, Any]], *, name: str, timeout_s: float = START_TIMEOUT_S
    ) -> dict[str, Any]:
        """Run ``work()`` in a forked child and return what it returned: for work that must
        not touch this process (a seccomp filter, a changed rlimit, a dropped capability)."""
        child = cls.start(
            lambda ctx: ctx.report({"result": dict(work())}), name=name, start_timeout_s=timeout_s
        )
        try:
            child.stop()
        finally:
            child.kill_if_running()
        return child.ready["result"]

    def stop(self, timeout_s: float = EXIT_TIMEOUT_S) -> dict[str, Any] | None:
        """Say stop, wait for the final report and the exit; None if no report came."""
        self._close_control()
        final = self.read_report(timeout_s)
        self.wait(timeout_s)
        return final

    def kill_if_running(self) -> None:
        self._close_control()
        if not self._reaped:
            for signum in (signal.SIGTERM, signal.SIGKILL):
                # An unreaped child keeps its pid, so this cannot hit another process.
                os.kill(self.pid, signum)
                if self.wait(EXIT_TIMEOUT_S):
                    break
        if self.report_fd >= 0:
            os.close(self.report_fd)
            self.report_fd = -1

    def read_report(self, timeout_s: float) -> dict[str, Any] | None:
        """The child's next JSON line, or None on EOF or timeout (noted)."""
        line = read_json_line(self.report_fd, timeout_s)
        if line is None:
            self.notes.append(f"the {self.name} reported nothing within {timeout_s:g} s")
        elif line is EOF:
            self.wait(EXIT_TIMEOUT_S)
            return None
        return line if isinstance(line, dict) else None

    def wait(self, timeout_s: float) -> bool:
        """Reap the child within ``timeout_s``; True once reaped. A non-zero exit is noted."""
        deadline_ns = time.monotonic_ns() + int(timeout_s * 1e9)
        while not self._reaped:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reaped = True
                self.exit_code = os.waitstatus_to_exitcode(status)
                if self.exit_code != 0:
                    how = (
                        f"signal {-self.exit_code}"
                        if self.exit_code < 0
                        else f"exit status {self.exit_code}"
                    )
                    self.notes.append(f"the {self.name} ended with {how}")
            elif time.monotonic_ns() >= deadline_ns:
                return False
            else:
                time.sleep(WAIT_POLL_S)
        return True

    def _close_control(self) -> None:
        if self.control_fd >= 0:
            os.close(self.control_fd)
            self.control_fd = -1


def _child_main(main: ChildMain, parent_pid: int, keep: set[int], control: int, report: int) -> int:
    ctx = ChildContext(control_fd=control, report_fd=report)
    try:
        die_with_parent(parent_pid)
        close_fds_except(keep)
        final = main(ctx)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which reports it
        write_json_line(report, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    write_json_line(report, dict(final or {}))
    return 0


def close_fds_except(keep: Iterable[int]) -> None:
    low = 0
    for fd in sorted(set(keep)):
        # Never an empty range: os.closerange(n, n) becomes close_range(n, ~0), closing all.
        if low < fd:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def write_json_line(fd: int, obj: Mapping[str, Any]) -> None:
    view = memoryview(json.dumps(obj).encode() + b"\n")
    while view:
        view = view[os.write(fd, view) :]


EOF: Any = object()  # read_json_line's answer when the writer closed the pipe


def read_json_line(fd: int, timeout_s: float) -> Any:
    """The next JSON line on ``fd``; None on timeout, ``EOF`` when the writer is gone."""
    deadline_ns = time.monotonic_ns() + int(timeout_s * 1e9)
    data = b""
    poller = select.poll()  # not select.select: it fails for fds >= 1024
    poller.register(fd, select.POLLIN)
    while b"\n" not in data:
        remaining_ms = (deadline_ns - time.monotonic_ns()) // 1_000_000
        if remaining_ms <= 0 or not poller.poll(remaining_ms):
            return None
        # One byte at a time: the pipe may hold the next line too, which is not ours yet.
        byte = os.read(fd, 1)
        if not byte:
            return EOF
        data += byte
    return json.loads(data)
