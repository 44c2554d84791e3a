"""Spare runners forked from a process that has already loaded everything.

Starting a runner the ordinary way costs about 1.5 s on a quiet 2-core host (measured: Django's
set-up 0.7-1.1 s, the runner's imports and the host probe 0.3-0.9 s), CPU that a run's first
figure waits for, and a spare that is still loading when the next click comes makes that run
wait for it. The fork server pays it once: it loads Django, the runner, the templates and the
forms, closes its database connection, and then forks one spare per request. A forked spare
only opens its own connection and readies its sandbox (sysops.agent.warm) before it waits for
its run id on its stdin, like a spare started alone (``runner_process --wait``).

The agent and the fork server talk over a SOCK_SEQPACKET socket pair: the agent sends ``fork``;
the server answers ``{"forked": pid}`` with the write end of the spare's stdin pipe attached
(SCM_RIGHTS), and ``{"exited": pid, "code": n}`` when it has reaped one. A forked runner is the
fork server's child, not the agent's: the agent follows it through a pidfd, which also says when
it exited should the fork server be gone, and signals it through that pidfd (never a recycled
pid). Every runner keeps its own session: the death of the agent or of the fork server does not
end a run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import logging
import os
import selectors
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# A fork server loads for about as long as an ordinary runner; a fork answers in milliseconds.
READY_TIMEOUT_S = 60.0
FORK_TIMEOUT_S = 10.0
# After a forked runner's pidfd says it exited, how long its exit status may take to arrive.
EXIT_CODE_WAIT_S = 1.0
MESSAGE_BYTES = 4096


# --- the fork server's side (python -m sysops.agent.runner_process --fork-server) -------------


def serve_forks(control_fd: int, spare: Callable[[], int]) -> None:
    """The fork server's loop: fork a spare per ``fork`` (the child runs ``spare()`` and exits
    with what it returns), report each child reaped, and end when the agent closes its end."""
    from django.db import connections

    connections.close_all()  # no child may share the loader's connection
    # What is loaded stays out of the collector's sight: a collection in a child would touch
    # every object, copying the whole heap page by page (copy-on-write) into that child.
    gc.collect()
    gc.freeze()
    control = socket.socket(fileno=control_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    sel = selectors.DefaultSelector()
    sel.register(control, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    control.send(json.dumps({"ready": os.getpid()}).encode())
    while True:
        for key, _ in sel.select():
            if key.fileobj is control:
                try:
                    request = control.recv(MESSAGE_BYTES)
                except OSError:
                    request = b""
                if not request:
                    return  # the agent is gone; running children carry on in their sessions
                if request == b"fork":
                    _fork(control, spare, closing=(sel, wake_r, wake_w))
            else:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, MESSAGE_BYTES)
        _reap(control)


def _fork(control: socket.socket, spare: Callable[[], int], *, closing: tuple[Any, ...]) -> None:
    stdin_r, stdin_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sel, wake_r, wake_w = closing
            sel.close()
            control.close()
            for fd in (wake_r, wake_w, stdin_w):
                os.close(fd)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.setsid()
            os.dup2(stdin_r, 0)
            os.close(stdin_r)
            sys.stdin = open(0, closefd=False)  # noqa: SIM115 - fd 0 is now the run id's pipe
            code = spare()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:  # noqa: BLE001 - a child never returns into the fork server
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
    os.close(stdin_r)
    try:
        socket.send_fds(control, [json.dumps({"forked": pid}).encode()], [stdin_w])
    finally:
        os.close(stdin_w)


def _reap(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError):
            control.send(json.dumps({"exited": pid, "code": code}).encode())


# --- the agent's side ---------------------------------------------------------------------------


class _Stdin:
    """The write end of a forked runner's stdin, as much of asyncio's StreamWriter as the
    agent uses (a run id is one short line: a pipe takes it whole)."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def write(self, data: bytes) -> None:
        if self.fd is None:
            raise BrokenPipeError("the runner's stdin is closed")
        os.write(self.fd, data)

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class ForkedRunner:
    """A runner forked by the fork server, with the part of asyncio.subprocess.Process the
    agent uses: ``pid``, ``stdin``, ``returncode``, ``wait()``, ``terminate()``, ``kill()``."""

    def __init__(self, pid: int, stdin_fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self.pid = pid
        self.stdin = _Stdin(stdin_fd)
        self.returncode: int | None = None  # known once it has exited and been reported
        self._loop = loop
        self._exited = loop.create_future()  # set when its pidfd says it ended
        self._code = loop.create_future()  # set when the fork server reports its status
        self._pidfd: int | None = os.pidfd_open(pid)
        loop.add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        self._close_pidfd()
        if not self._exited.done():
            self._exited.set_result(None)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    @property
    def exited(self) -> bool:
        return self._exited.done()

    def reported(self, code: int) -> None:
        if not self._code.done():
            self._code.set_result(code)

    async def wait(self) -> int | None:
        """Its exit status (negative: the signal that killed it); None when it exited but the
        fork server, gone meanwhile, could not say how."""
        await asyncio.shield(self._exited)
        if not self._code.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._code), EXIT_CODE_WAIT_S)
        self.stdin.close()
        if self._code.done():
            self.returncode = self._code.result()
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)

    def close(self) -> None:
        """This process is done with it (it may run on): its pidfd and stdin closed."""
        self._close_pidfd()
        self.stdin.close()

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The agent's handle on its fork server (a child process it starts)."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._control: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[None] | None = None
        self._waiting: collections.deque[asyncio.Future[ForkedRunner]] = collections.deque()
        self._children: dict[int, ForkedRunner] = {}

    @property
    def alive(self) -> bool:
        return self._control is not None

    async def start(self, argv: list[str], *, env: Mapping[str, str], cwd: str) -> None:
        """Start ``argv`` (given the control socket's descriptor number as its last argument)
        and wait until it has loaded."""
        self._loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._control = ours
        self._ready = self._loop.create_future()
        self._loop.add_reader(ours.fileno(), self._on_message)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), READY_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    async def fork(self) -> ForkedRunner:
        if self._control is None or self._loop is None:
            raise ConnectionError("the fork server is not running")
        waiter: asyncio.Future[ForkedRunner] = self._loop.create_future()
        self._waiting.append(waiter)
        self._control.send(b"fork")
        return await asyncio.wait_for(waiter, FORK_TIMEOUT_S)

    def _on_message(self) -> None:
        assert self._control is not None and self._loop is not None
        try:
            data, fds, _, _ = socket.recv_fds(self._control, MESSAGE_BYTES, 1)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data:
            self.close()
            return
        message = json.loads(data)
        if "ready" in message and self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        elif "forked" in message and fds:
            runner = ForkedRunner(int(message["forked"]), fds[0], self._loop)
            self._children[runner.pid] = runner
            while self._waiting:
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(runner)
                    return
            runner.terminate()  # nobody waits for it any more (a fork that timed out)
        elif "exited" in message:
            runner = self._children.pop(int(message["exited"]), None)
            if runner is not None:
                runner.reported(int(message["code"]))
        else:
            for fd in fds:
                os.close(fd)

    def close(self) -> None:
        """Stop the fork server (it ends when its control socket closes); the runners it forked
        carry on."""
        if self._control is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._control.fileno())
            self._control.close()
            self._control = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ConnectionError("the fork server stopped"))
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionError("the fork server stopped"))

    async def stop(self) -> None:
        self.close()
        if self._proc is not None and self._proc.returncode is None:
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except TimeoutError:
                self._proc.kill()


def fork_server_argv(agent_socket: Path | None) -> list[str]:
    """The fork server's command line, but for its control descriptor's number (ForkServer.start
    adds it)."""
    argv = [sys.executable, "-m", "sysops.agent.runner_process", "--fork-server"]
    if agent_socket is not None:
        argv += ["--agent-socket", str(agent_socket)]
    return [*argv, "--control-fd"]
