"""Timing runs get the CPUs to themselves: the agent runs nothing beside one, and runs that did
share the CPUs say so on their page."""

import os
import subprocess
import sys

import pytest

from sysops.models import Run
from tests.helpers.runs import database_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
COST = {"call": "getppid", "layers": ["native"], "iterations": 1000, "repetitions": 5, "warmup": 0}
PACED = {"samples": 15, "duration_s": 1.5}  # not a timing experiment


@pytest.fixture
def agent(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SYSOPS_VAR_DIR": str(tmp_path),
        "SYSOPS_TEST_EXPERIMENTS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_agent", "--max-running", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield proc
    proc.terminate()
    proc.wait(timeout=30)


def finished(*runs):
    return [wait_for(run, lambda r: r.is_terminal, timeout_s=120) for run in runs]


def test_two_timing_runs_submitted_at_once_run_one_after_the_other(agent):
    first, second = (Run.objects.create(experiment="syscall-cost", params=COST) for _ in "ab")

    first, second = finished(first, second)

    assert (first.status, second.status) == (Run.Status.SUCCEEDED, Run.Status.SUCCEEDED)
    assert first.finished_at <= second.started_at
    assert first.overlapped == second.overlapped == []
    # Each was handed a sandbox its spare runner had started while waiting (the default policy).
    for run in (first, second):
        assert run.logs.filter(message__contains="ahead of the run").exists()


def test_a_timing_run_waits_for_the_runs_before_it_which_record_their_overlap(agent, client):
    paced = [Run.objects.create(experiment="synthetic", params=PACED) for _ in "ab"]
    timing = Run.objects.create(experiment="syscall-cost", params=COST)

    *paced, timing = finished(*paced, timing)

    assert [r.status for r in [*paced, timing]] == [Run.Status.SUCCEEDED] * 3
    # Its measuring began once both others had ended; nothing ran beside it.
    assert timing.stages["sandbox_started"] >= max(r.finished_at.timestamp() * 1e9 for r in paced)
    assert timing.overlapped == []
    # The two others ran side by side, and each says so next to its figures.
    assert paced[0].overlapped == [paced[1].pk] and paced[1].overlapped == [paced[0].pk]
    page = client.get(f"/runs/{paced[0].pk}/").content.decode()
    assert f'Ran beside <a href="/runs/{paced[1].pk}/">run #{paced[1].pk}</a>' in page
    assert 'id="run-overlap"></span>' in client.get(f"/runs/{timing.pk}/").content.decode()
