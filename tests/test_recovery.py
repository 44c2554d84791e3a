"""A runner SIGKILLed mid-run leaves its work directory (staged code, trace FIFO); the agent's
recovery removes it, as it removes the run's cgroups, and leaves live runs' directories alone."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sysops.agent import rundirs
from sysops.agent.agent import Agent
from sysops.models import Run
from tests.helpers.runs import database_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
APPEAR_TIMEOUT_S = 60.0


@pytest.fixture
def run_dir(settings):
    # Its own runs dir: other checkouts on this host keep theirs in /tmp.
    path = Path(tempfile.mkdtemp(prefix="sysops-test-runs-"))
    path.chmod(0o755)
    settings.SYSOPS_RUN_DIR = path
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_agent_removes_the_work_dir_of_a_runner_that_was_killed(run_dir):
    run = Run.objects.create(
        experiment="hostile",
        params={"case": "sleep", "sleep_s": 30, "path": "", "wall_s": 40, "cpu_s": 2},
        trace_mode=Run.TraceMode.OFF,
    )
    assert Agent(max_running=1).claim_next() == run.pk
    env = {**os.environ, "DATABASE_URL": database_url(), "SYSOPS_RUN_DIR": str(run_dir)}
    runner = subprocess.Popen(
        [sys.executable, "-m", "sysops.agent.runner_process", str(run.pk)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    Run.objects.filter(pk=run.pk).update(runner_pid=runner.pid)
    try:
        wait_for(run, lambda r: r.logs.filter(message__startswith="sandbox started").exists())
        (left,) = run_dir.glob(f"sysops-run-{run.pk}-pid{runner.pid}-*")
        assert (left / "code" / "sysops" / "worker").is_dir()
        # A live runner's directory, which the sweep must not touch.
        live = rundirs.make(run_dir, run.pk + 1)
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()

    assert Agent().recover_stale() == [run.pk]

    assert not left.exists()
    assert live.exists()
    assert sorted(p.name for p in run_dir.iterdir()) == [live.name]


def test_the_sweep_leaves_a_dir_with_a_filesystem_still_mounted_inside(run_dir, monkeypatch):
    stale = run_dir / "sysops-run-7-pid999999999-abc"
    (stale / "scratch").mkdir(parents=True)
    monkeypatch.setattr(rundirs, "_mount_points", lambda: ["/", f"{stale}/scratch"])

    assert rundirs.sweep_stale(run_dir) == []
    assert stale.exists()

    monkeypatch.setattr(rundirs, "_mount_points", lambda: ["/"])
    assert rundirs.sweep_stale(run_dir) == [str(stale)]
