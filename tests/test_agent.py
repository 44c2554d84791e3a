"""The agent claims runs atomically and finishes runs whose runner is gone."""

import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from sysops.agent.agent import Agent
from sysops.models import Run

pytestmark = pytest.mark.django_db

PARAMS = {"clients": 1, "message_bytes": 1, "duration_s": 1.0}


def queued(n=1):
    return [Run.objects.create(experiment="epoll-echo", params=PARAMS) for _ in range(n)]


def test_it_claims_the_oldest_queued_run_once():
    first, second = queued(2)
    a, b = Agent(max_running=1), Agent(max_running=1)
    assert a.claim_next() == first.pk
    assert b.claim_next() == second.pk
    assert a.claim_next() is None
    first.refresh_from_db()
    assert first.status == Run.Status.RUNNING
    assert first.claimed_by == a.agent_id
    assert first.started_at is not None


def test_it_does_not_claim_a_run_cancelled_while_queued(client):
    (run,) = queued()
    client.post(f"/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert run.reason == "cancelled before it started"
    assert Agent().claim_next() is None


def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def running(**fields):
    return Run.objects.create(
        experiment="epoll-echo",
        params=PARAMS,
        status=Run.Status.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        **fields,
    )


def test_it_finishes_a_run_whose_runner_died_on_this_host():
    run = running(claimed_by=f"{socket.gethostname()}:1", runner_pid=dead_pid())
    assert Agent().recover_stale() == [run.pk]
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "runner died" in run.reason and "before finishing the run" in run.reason
    assert run.finished_at is not None


def test_it_finishes_a_run_whose_runner_went_silent_elsewhere():
    run = running(claimed_by="other-host:1", runner_pid=1)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert Agent().recover_stale() == [run.pk]
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "silent" in run.reason


def test_it_leaves_a_run_whose_runner_is_alive():
    # A process that looks like a runner (its command line names the runner module).
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "sysops.agent.runner_process"]
    )
    try:
        # Popen may return before the child has exec'd: until then its cmdline is ours.
        deadline = time.monotonic() + 10
        while b"runner_process" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the stand-in runner never started"
            time.sleep(0.01)
        run = running(claimed_by=f"{socket.gethostname()}:1", runner_pid=proc.pid)
        other = running(claimed_by="other-host:1")
        assert Agent().recover_stale() == []
        run.refresh_from_db()
        other.refresh_from_db()
        assert run.status == other.status == Run.Status.RUNNING
    finally:
        proc.kill()
        proc.wait()


def test_it_leaves_a_run_another_agent_here_is_still_starting():
    # Claimed by a live agent on this host that has not recorded its runner's pid yet.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        run = running(claimed_by=f"{socket.gethostname()}:{proc.pid}")
        assert Agent().recover_stale() == []
        run.refresh_from_db()
        assert run.status == Run.Status.RUNNING
    finally:
        proc.kill()
        proc.wait()


def test_it_finishes_a_run_whose_agent_died_before_starting_its_runner():
    run = running(claimed_by=f"{socket.gethostname()}:{dead_pid()}")
    assert Agent().recover_stale() == [run.pk]
