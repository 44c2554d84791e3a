"""Standalone agents (`manage.py sysops_worker`) started by tests, each under a host name of its
own and in a session of its own, so that a test can kill one with everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from sysops.models import HostAgent

# Fast enough for a test to see a host go; slow enough for a loaded 2-core machine.
HEARTBEAT_S = 1.0
EXPIRY_S = 4.0
REGISTER_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass
class AgentProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill_host(self) -> None:
        """SIGKILL the agent and its runners at once, as a host that dies (sandboxes die with
        their runner: bubblewrap's --die-with-parent). Runners live in sessions of their own
        (they outlive a restarted agent), so they are found as the agent's descendants (its
        fork server's children)."""
        if self.popen.poll() is None:
            runners = _descendants(self.popen.pid)
            os.killpg(self.popen.pid, signal.SIGKILL)
            for pid in runners:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> int:
        """SIGTERM (runners record why they stop), SIGKILL if it hangs; its exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill_host()
        self.log_path.unlink(missing_ok=True)
        return self.popen.returncode


def start_agent(
    name: str,
    database_url: str,
    *,
    prefix: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> AgentProcess:
    """``manage.py sysops_worker`` as host ``name``; ``prefix`` wraps it (``ip netns exec …``)."""
    fd, log_path = tempfile.mkstemp(prefix=f"sysops-agent-{name}-", suffix=".log")
    try:
        popen = subprocess.Popen(
            [*prefix, sys.executable, "manage.py", "sysops_worker", "--max-running", "1"],
            env={
                **os.environ,
                "DATABASE_URL": database_url,
                "SYSOPS_HOST_NAME": name,
                "SYSOPS_AGENT_HEARTBEAT_S": str(HEARTBEAT_S),
                "SYSOPS_AGENT_EXPIRY_S": str(EXPIRY_S),
                "SYSOPS_EMBEDDED_AGENT": "0",
                **(env or {}),
            },
            cwd=settings.BASE_DIR,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
        )
    finally:
        os.close(fd)
    return AgentProcess(name, popen, Path(log_path))


def wait_registered(agent: AgentProcess, *, using: str = DEFAULT_DB_ALIAS) -> HostAgent:
    """The agent's row once it is alive; fails with the agent's output if it died first."""
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    while time.monotonic() < deadline:
        row = HostAgent.objects.using(using).alive().filter(name=agent.name).first()
        if row is not None:
            return row
        if agent.popen.poll() is not None:
            raise AssertionError(f"agent {agent.name} exited: {agent.log()}")
        time.sleep(0.2)
    raise AssertionError(f"agent {agent.name} not registered in {REGISTER_TIMEOUT_S:g} s")


def _descendants(pid: int) -> list[int]:
    """``pid``'s children, theirs, and so on, parents first."""
    found, parents = [], [pid]
    while parents:
        children = [child for parent in parents for child in _children(parent)]
        found += children
        parents = children
    return found


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found
