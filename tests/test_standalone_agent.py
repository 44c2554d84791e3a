"""`manage.py run_agent` (alias `sysops_worker`): the agent on its own claims queued runs, runs
them, and on SIGTERM stops its runners with the reason recorded."""

import os
import signal
import subprocess
import sys

import pytest

from sysops.models import Run
from tests.helpers.runs import database_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def start_worker():
    env = {**os.environ, "DATABASE_URL": database_url()}
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_agent", "--max-running", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_it_claims_and_runs_queued_runs_and_stops_cleanly():
    quick = Run.objects.create(
        experiment="syscall-cost",
        params={
            "call": "getppid",
            "layers": ["native"],
            "iterations": 1000,
            "repetitions": 5,
            "warmup": 0,
        },
    )
    slow = Run.objects.create(
        experiment="epoll-echo", params={"clients": 1, "message_bytes": 8, "duration_s": 30}
    )
    worker = start_worker()
    try:
        quick = wait_for(quick, lambda r: r.is_terminal)
        assert quick.status == Run.Status.SUCCEEDED, quick.reason
        assert quick.claimed_by.endswith(f":{worker.pid}")
        slow = wait_for(slow, lambda r: r.progress > 0)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        worker.kill()
        worker.wait()
    slow.refresh_from_db()
    assert slow.status == Run.Status.FAILED
    assert slow.reason == "runner stopped by SIGTERM (agent shutting down)"


def test_the_old_name_still_runs_the_agent():
    from sysops.management.commands import run_agent, sysops_worker

    assert sysops_worker.Command is run_agent.Command
