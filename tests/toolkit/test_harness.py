"""The child-process harness with real forks and pipes."""

from __future__ import annotations

import os
import socket

import pytest

from sysops.worker.toolkit.harness import Child, ChildContext


def _echo_port_server(ctx: ChildContext) -> dict:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    ctx.report({"port": listener.getsockname()[1]})
    conn, _ = listener.accept()
    data = conn.recv(100)
    conn.sendall(data.upper())
    conn.close()
    while not ctx.stop_requested(timeout_s=1.0):
        pass
    return {"served": len(data), "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd"))}


def test_a_child_reports_ready_serves_and_returns_its_final_report() -> None:
    child = Child.start(_echo_port_server, name="echo server")
    try:
        with socket.create_connection(("127.0.0.1", child.ready["port"]), timeout=5) as client:
            client.sendall(b"hello")
            assert client.recv(100) == b"HELLO"
        final = child.stop()
    finally:
        child.kill_if_running()
    assert final["served"] == 5
    assert child.exit_code == 0 and child.notes == []
    # stdio, the two pipes, the listener, and listdir's own fd: nothing inherited from us.
    assert len(final["fds"]) <= 7


def _failing(ctx: ChildContext) -> None:
    raise PermissionError("no entry")


def test_a_child_that_fails_before_ready_raises_with_its_own_error() -> None:
    with pytest.raises(RuntimeError, match="the prober did not start: PermissionError: no entry"):
        Child.start(_failing, name="prober")


def _hang(ctx: ChildContext) -> None:
    ctx.report({"ready": True})
    while True:
        os.pause()


def test_a_child_that_ignores_stop_is_killed_and_reaped() -> None:
    child = Child.start(_hang, name="sleeper")
    child.kill_if_running()
    assert child.exit_code not in (None, 0)  # SIGTERM, or its handler exiting non-zero
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)


def test_run_does_work_in_a_child_that_cannot_touch_the_parent() -> None:
    import resource

    before = resource.getrlimit(resource.RLIMIT_NOFILE)

    def lower_limit() -> dict:
        resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
        return {"limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0], "pid": os.getpid()}

    result = Child.run(lower_limit, name="limiter")
    assert result["limit"] == 16 and result["pid"] != os.getpid()
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before
