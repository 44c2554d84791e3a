"""Workers on several hosts, on one machine: agents register under their host name, heartbeat,
stamp that name on their runs, and one that dies is found by another, which finishes its run."""

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from sysops.agent.agent import Agent
from sysops.models import HostAgent, Run
from sysops.sandbox import cached_host_report
from tests.helpers.agents import EXPIRY_S, start_agent, wait_registered
from tests.helpers.runs import database_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

QUICK = {
    "call": "getppid",
    "layers": ["native"],
    "iterations": 1000,
    "repetitions": 5,
    "warmup": 0,
}
SLEEP_S = 40
SLEEPY = {"case": "sleep", "sleep_s": SLEEP_S, "path": "", "wall_s": 60, "cpu_s": 2}


@pytest.fixture(autouse=True)
def _agent_expiry(settings):
    settings.SYSOPS_AGENT_EXPIRY_S = EXPIRY_S


def _wait_row(row, predicate, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    row.refresh_from_db()
    while not predicate(row):
        assert time.monotonic() < deadline, f"{row} still {row.running} running"
        time.sleep(0.2)
        row.refresh_from_db()
    return row


def test_it_registers_heartbeats_runs_under_its_name_and_goes_when_stopped(client):
    agent = start_agent("alpha-host", database_url())
    try:
        row = wait_registered(agent)
        assert row.agent_id == f"alpha-host:{agent.pid}"
        assert row.sandbox["checks"]
        assert row.host is not None and row.host.fingerprint["hostname"] == "alpha-host"
        first_beat = row.heartbeat_at
        run = Run.objects.create(experiment="syscall-cost", params=QUICK)
        run = wait_for(run, lambda r: r.is_terminal)
        assert run.status == Run.Status.SUCCEEDED, run.reason
        assert run.claimed_by == row.agent_id
        assert run.host.fingerprint["hostname"] == "alpha-host"
        row = _wait_row(row, lambda r: r.running == 0)  # the next heartbeat says so
        assert row.heartbeat_at > first_beat
        page = client.get(reverse("dashboard")).content.decode()
        assert "alpha-host" in page and "host-alive" in page
    finally:
        log = agent.log()
        status = agent.stop()
    assert status == 0, log
    row.refresh_from_db()
    assert row.state == HostAgent.State.GONE and row.stopped_at is not None


def test_a_killed_agent_s_run_is_finished_by_another_agent_with_the_reason(client):
    doomed = start_agent("doomed-host", database_url())
    survivor = None
    try:
        wait_registered(doomed)
        run = Run.objects.create(experiment="hostile", params=SLEEPY)
        run = wait_for(run, lambda r: r.logs.filter(message__startswith="sandbox started").exists())
        assert run.claimed_by.startswith("doomed-host:")
        doomed.kill_host()
        killed_at = time.monotonic()
        survivor = start_agent("survivor-host", database_url())
        run = wait_for(run, lambda r: r.is_terminal, timeout_s=SLEEP_S / 2)
        assert time.monotonic() - killed_at < SLEEP_S / 2  # not the probe ending on its own
        assert run.status == Run.Status.FAILED
        assert run.reason.startswith("the agent on host doomed-host stopped heartbeating at ")
        assert run.reason.endswith(" UTC; its run could not finish")
        doomed_row = HostAgent.objects.get(name="doomed-host")
        assert doomed_row.state == HostAgent.State.GONE
        page = client.get(reverse("dashboard")).content.decode()
        section = page[page.index('id="hosts"') :]
        doomed_at = section.index("doomed-host")
        assert "host-gone" in section[doomed_at : doomed_at + 200]
    finally:
        doomed.stop()
        if survivor is not None:
            survivor.stop()


def test_the_hosts_section_escapes_what_agents_report(client, settings):
    settings.SYSOPS_HOST_NAME = "<script>alert(1)</script>"
    agent = Agent(max_running=2)
    agent.register(cached_host_report())
    row = HostAgent.objects.get(agent_id=agent.agent_id)
    row.host.fingerprint["cpu_model"] = "<img src=x onerror=alert(2)>"
    row.host.save()
    page = client.get(reverse("dashboard")).content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "0 of 2 running" in page


def test_the_headless_command_runs_on_a_named_host_and_refuses_an_unknown_one():
    agent = start_agent("headless-host", database_url())
    try:
        wait_registered(agent)
        done = _headless("--host", "headless-host")
        assert done.returncode == 0, done.stderr
        assert "queued for host headless-host" in done.stderr
        assert "host: headless-host" in done.stdout
        run = Run.objects.get()
        assert run.pinned_host == "headless-host" and run.claimed_by.startswith("headless-host:")

        refused = _headless("--host", "nowhere")
        assert refused.returncode != 0
        assert "host: No agent runs on a host named 'nowhere'." in refused.stderr
        assert Run.objects.count() == 1
    finally:
        agent.stop()


def _headless(*options: str) -> subprocess.CompletedProcess[str]:
    """``run_experiment syscall-cost`` with QUICK's parameters and ``options``."""
    command = [sys.executable, "manage.py", "run_experiment", "syscall-cost", *options]
    for name, value in QUICK.items():
        command.append(f"--param={name}={','.join(value) if isinstance(value, list) else value}")
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SYSOPS_AGENT_EXPIRY_S": str(EXPIRY_S),
        "SYSOPS_EMBEDDED_AGENT": "0",
    }
    return subprocess.run(
        command, env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120
    )


def test_another_agent_s_silence_counts_only_once_this_agent_has_beaten_for_an_expiry(settings):
    """At start-up or after a database outage every agent has been silent: a run is failed for
    its agent's silence only when the judge itself has heartbeat without a gap for an expiry."""
    expiry_s = 2.0
    settings.SYSOPS_AGENT_EXPIRY_S = expiry_s
    long_ago = timezone.now() - timedelta(seconds=10 * expiry_s)
    HostAgent.objects.create(name="silent-host", agent_id="silent-host:1", heartbeat_at=long_ago)
    run = Run.objects.create(experiment="syscall-cost", params=QUICK)
    Run.objects.claim(run.pk, by="silent-host:1")
    Run.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
    judge = Agent(max_running=1)
    judge.register(cached_host_report())

    assert judge.recover_stale() == []  # just started: everyone's silence proves nothing yet
    time.sleep(1.2 * expiry_s)
    judge.heartbeat()  # a gap as long as the expiry: this agent was cut off too
    assert judge.recover_stale() == []
    for _ in range(3):
        time.sleep(expiry_s / 2)
        judge.heartbeat()
    assert judge.recover_stale() == [run.pk]
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.reason.startswith("the agent on host silent-host stopped heartbeating at ")
