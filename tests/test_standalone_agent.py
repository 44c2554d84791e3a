"""`manage.py sysops_worker`: the agent on its own claims queued runs, runs them, and on SIGTERM
stops its runners with the reason recorded."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.db import connection

from sysops.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def start_worker():
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}"}
    return subprocess.Popen(
        [sys.executable, "manage.py", "sysops_worker", "--max-running", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(run, predicate, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if predicate(run):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run.pk} still {run.status}: {run.reason}")


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
