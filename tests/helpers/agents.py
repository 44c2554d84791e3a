"""Standalone agents (`manage.py sysops_worker`) started by tests, each under a host name of its
own, in a session of its own so that a test can kill one with everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from django.conf import settings

from sysops.models import HostAgent

# Fast enough for a test to see a host go; slow enough for a loaded 2-core machine.
HEARTBEAT_S = 1.0
EXPIRY_S = 4.0
REGISTER_TIMEOUT_S = 60.0


def start_agent(
    name: str,
    database_url: str,
    *,
    prefix: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """``manage.py sysops_worker`` as host ``name``; ``prefix`` wraps it (``ip netns exec …``)."""
    return subprocess.Popen(
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
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_registered(name: str, agent: subprocess.Popen[str]) -> HostAgent:
    """The agent's row once it is alive; fails with the agent's output if it died first."""
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    while time.monotonic() < deadline:
        row = HostAgent.objects.alive().filter(name=name).first()
        if row is not None:
            return row
        if agent.poll() is not None:
            raise AssertionError(f"agent {name} exited {agent.returncode}: {agent.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError(f"agent {name} did not register within {REGISTER_TIMEOUT_S:g} s")


def kill_host(agent: subprocess.Popen[str]) -> None:
    """SIGKILL the agent and its runners at once, as a host that dies (sandboxes die with their
    runner: bubblewrap's --die-with-parent)."""
    if agent.poll() is None:
        os.killpg(agent.pid, signal.SIGKILL)
    agent.wait()


def stop_agent(agent: subprocess.Popen[str], timeout_s: float = 30) -> None:
    if agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_host(agent)
