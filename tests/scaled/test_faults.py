"""The scaled mode under faults: Redis stopped and started during a run, PostgreSQL restarted
while agents are idle and while they run. The database is the record; the live layer is not."""

from __future__ import annotations

import time

from django.db import connections

from sysops.models import Run, SampleChunk
from tests.scaled.services import wait_until

FINISH_TIMEOUT_S = 300.0
SAMPLES = 200
# Long enough that the run is still going while the test breaks something and mends it.
PACED_S = 10.0


def paced_run(using: str) -> Run:
    params = {"samples": SAMPLES, "duration_s": PACED_S}
    return Run.objects.using(using).create(experiment="synthetic", params=params)


def wait_streaming(run: Run) -> None:
    """Until the run is running and has stored some of its samples."""

    def streaming() -> bool:
        run.refresh_from_db()
        assert not run.is_terminal, run.reason
        return run.status == Run.Status.RUNNING and run.progress > 0

    wait_until(streaming, timeout_s=FINISH_TIMEOUT_S, what=f"run {run.pk} streaming")


def wait_finished(run: Run) -> Run:
    def finished() -> bool:
        run.refresh_from_db()
        return run.is_terminal

    wait_until(finished, timeout_s=FINISH_TIMEOUT_S, what=f"run {run.pk} finished", interval_s=0.5)
    return run


def stored_samples(using: str, run: Run) -> list[list[object]]:
    chunks = SampleChunk.objects.using(using).filter(run=run).order_by("seq")
    return [sample for chunk in chunks for sample in chunk.samples]


def expected_samples() -> list[list[object]]:
    return [["synthetic", i, i % 97] for i in range(SAMPLES)]


def test_a_run_outlives_redis_and_a_viewer_that_reconnects_gets_all_of_it(scaled_db, scaled_stack):
    redis = scaled_stack.services.redis
    agent = scaled_stack.start_agent()
    run = paced_run(scaled_db)
    first_viewer = scaled_stack.start_viewer(run.pk)
    first_viewer.wait_ready()
    wait_streaming(run)

    redis.stop()
    stored = len(stored_samples(scaled_db, run))
    wait_until(
        lambda: len(stored_samples(scaled_db, run)) > stored,
        timeout_s=FINISH_TIMEOUT_S,
        what="samples stored while Redis is down",
    )
    redis.start()

    run = wait_finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert stored_samples(scaled_db, run) == expected_samples()
    # The viewer that was watching lost its socket with Redis (a browser reconnects) or, had
    # its consumer outlived the outage, ended with the run; either way it never hangs.
    first = first_viewer.seen()
    assert first["closed"] or first["status"] == "succeeded", first

    again = scaled_stack.start_viewer(run.pk)
    seen = again.seen()
    assert (seen["status"], seen["error"]) == ("succeeded", "")
    assert seen["samples"] == expected_samples()

    assert agent.popen.poll() is None
    log = agent.log()
    assert log.count("channel layer unreachable") == 1, log
    assert "channel layer reachable again" in log, log


def test_agents_outlive_a_postgresql_restart_idle_and_while_running(scaled_db, scaled_stack):
    postgres = scaled_stack.services.postgres
    agents = [scaled_stack.start_agent(), scaled_stack.start_agent()]
    # Idle: both agents polling an empty queue.
    time.sleep(3)
    postgres.restart()
    connections[scaled_db].close()  # this test's own connection went with it
    run = wait_finished(paced_run(scaled_db))
    assert run.status == Run.Status.SUCCEEDED, run.reason

    # Busy: a run streaming into the database when it goes away.
    run = paced_run(scaled_db)
    wait_streaming(run)
    postgres.restart()
    connections[scaled_db].close()
    run = wait_finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert stored_samples(scaled_db, run) == expected_samples()

    for agent in agents:
        assert agent.popen.poll() is None, agent.log()
    # The runner (its stderr is its agent's) waited for the database rather than fail the run.
    assert any("database unreachable" in agent.log() for agent in agents)
    after = wait_finished(paced_run(scaled_db))
    assert after.status == Run.Status.SUCCEEDED, after.reason
