"""Standalone agents (real ``manage.py sysops_worker`` processes) racing on one PostgreSQL
queue: every run is claimed by exactly one of them, started once, and finishes."""

from __future__ import annotations

import socket
import time

import pytest

from sysops.models import Run, RunLog, SampleChunk

RUNS = 50
SAMPLES = 20
FINISH_TIMEOUT_S = 600.0


def wait_all_finished(using: str, ids: list[int], agents: list) -> None:
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    while time.monotonic() < deadline:
        left = Run.objects.using(using).filter(pk__in=ids).exclude(status__in=Run.TERMINAL)
        if not left.exists():
            return
        for agent in agents:
            assert agent.popen.poll() is None, f"agent {agent.pid} exited:\n{agent.log()}"
        time.sleep(0.5)
    raise AssertionError(f"{left.count()} runs not finished in {FINISH_TIMEOUT_S:g} s")


@pytest.mark.slow
@pytest.mark.parametrize("agent_count", [2, 4])
def test_racing_agents_claim_each_run_once_and_finish_all(scaled_db, scaled_stack, agent_count):
    runs = Run.objects.using(scaled_db)
    ids = [runs.create(experiment="synthetic", params={"samples": SAMPLES}).pk for _ in range(RUNS)]
    agents = [scaled_stack.start_agent(max_running=1) for _ in range(agent_count)]
    wait_all_finished(scaled_db, ids, agents)
    for agent in agents:
        assert agent.stop() == 0, agent.log()

    agent_ids = {f"{socket.gethostname()}:{agent.pid}" for agent in agents}
    finished = list(runs.filter(pk__in=ids).order_by("id"))
    assert [(r.pk, r.status, r.reason) for r in finished if r.status != Run.Status.SUCCEEDED] == []
    assert {r.claimed_by for r in finished} <= agent_ids
    # They raced: every agent took some of the queue.
    assert {r.claimed_by for r in finished} == agent_ids
    # Started once: one sandbox per run, its samples and its result row once.
    starts = RunLog.objects.using(scaled_db).filter(
        run__in=ids, message__startswith="sandbox started"
    )
    assert sorted(starts.values_list("run_id", flat=True)) == ids
    for run in finished:
        chunks = SampleChunk.objects.using(scaled_db).filter(run=run)
        assert sum(len(c.samples) for c in chunks) == SAMPLES, run.pk
        assert [row["metric"] for row in run.results] == ["samples emitted"], run.pk
