"""The fork server: a real runner process that loaded Django once forks waiting spares; the
agent follows them through pidfds and the statuses the server reports."""

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from sysops.agent import forkserver
from tests.helpers.runs import database_url

pytestmark = pytest.mark.django_db(transaction=True)


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def getppid_run(layer: str, *, iterations: int, repetitions: int):
    from sysops.models import Run

    params = {"call": "getppid", "layers": [layer], "iterations": iterations, "warmup": 0}
    return Run.objects.create(
        experiment="syscall-cost", params={**params, "repetitions": repetitions}
    )


async def with_agent(scenario):
    """``scenario(agent)`` beside a running agent (its own fork server), which then stops."""
    from sysops.agent.agent import Agent

    agent = Agent(max_running=1)
    task = asyncio.get_running_loop().create_task(agent.run_forever())
    try:
        return await scenario(agent)
    finally:
        await agent.stop()
        task.cancel()


async def poll(agent, query, timeout_s: float = 60):
    """``query()`` on the agent's database thread until it is truthy (its last answer)."""
    for _ in range(int(timeout_s / 0.1)):
        answer = await agent.db(query)
        if answer:
            return answer
        await asyncio.sleep(0.1)
    return answer


async def start_server() -> forkserver.ForkServer:
    server = forkserver.ForkServer()
    env = {**os.environ, "DATABASE_URL": database_url()}
    await server.start(forkserver.fork_server_argv(None), env=env, cwd=str(settings.BASE_DIR))
    return server


def test_it_forks_spares_that_wait_for_a_run_and_reports_how_they_ended():
    async def scenario():
        server = await start_server()
        try:
            first, second = await server.fork(), await server.fork()
            assert first.pid != second.pid
            for runner in (first, second):
                # Found by the agent as runners (its recovery reads the command line), each in a
                # session of its own, and waiting: not exited.
                assert b"sysops.agent.runner_process" in cmdline(runner.pid)
                for _ in range(100):  # (it calls setsid just after the fork)
                    if os.getsid(runner.pid) == runner.pid:
                        break
                    await asyncio.sleep(0.02)
                assert os.getsid(runner.pid) == runner.pid
                assert os.getsid(runner.pid) != os.getsid(0)
                assert not runner.exited and runner.returncode is None
            # Told to stop while waiting, a spare throws its head start away and exits 0.
            first.terminate()
            assert await asyncio.wait_for(first.wait(), 30) == 0
            # Its stdin closed (the agent went away), a spare ends as well.
            second.stdin.close()
            assert await asyncio.wait_for(second.wait(), 30) == 0
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_its_spares_outlive_it_and_the_agent_still_sees_them_end():
    async def scenario():
        server = await start_server()
        spare = await server.fork()
        server_pid = server._proc.pid
        os.kill(server_pid, signal.SIGKILL)
        await asyncio.wait_for(server._proc.wait(), 10)
        for _ in range(100):  # the agent notices the closed control socket
            if not server.alive:
                break
            await asyncio.sleep(0.05)
        assert not server.alive
        with pytest.raises(ConnectionError):
            await server.fork()
        assert not spare.exited  # the run it would take is not lost with the server
        spare.terminate()
        # Its exit is seen through its pidfd; its status died with the server.
        assert await asyncio.wait_for(spare.wait(), 30) is None

    asyncio.run(scenario())


def test_the_agent_runs_a_real_run_on_a_forked_spare():
    """The whole path through a server process: a queued run, the embedded agent's fork server,
    a forked spare, its warm sandbox, the worker, the result."""
    from sysops.agent.agent import Agent
    from sysops.models import Run

    run = getppid_run("native", iterations=1000, repetitions=5)

    async def scenario(agent: Agent) -> int | None:
        await poll(agent, lambda: Run.objects.filter(pk=run.pk, status__in=Run.TERMINAL).exists())
        assert agent._forks is not None and agent._forks.alive
        return await agent.db(
            lambda: Run.objects.values_list("runner_pid", flat=True).get(pk=run.pk)
        )

    runner_pid = asyncio.run(with_agent(scenario))
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert [row["metric"] for row in run.results if "native" in row.get("metric", "")]
    assert "ahead of the run" in "".join(run.logs.values_list("message", flat=True))
    assert runner_pid is not None


def test_a_fork_server_that_cannot_start_leaves_spares_to_start_on_their_own():
    async def scenario():
        server = forkserver.ForkServer()
        argv = [sys.executable, "-c", "import sys; sys.exit(3)", "--control-fd"]
        with pytest.raises(ConnectionError):
            await server.start(argv, env=dict(os.environ), cwd=str(settings.BASE_DIR))
        assert not server.alive

    asyncio.run(scenario())


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may raise a process's priority")
def test_a_runs_runner_and_sandbox_run_ahead_of_the_web_server(settings):
    """SYSOPS_RUN_NICE for the runner that took the run and every process of its sandbox uid,
    the warm sandbox's worker included; spares and the server stay where they were."""
    from sysops.agent.agent import Agent
    from sysops.models import Run

    run = getppid_run("python", iterations=1_000_000, repetitions=30)  # some 20 s

    def nice(pid: int) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])

    def sandbox_pids(uid: int) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    def started_warm():
        return (
            Run.objects.filter(
                pk=run.pk,
                logs__message__contains="ahead of the run",
                runner_pid__isnull=False,
                sandbox_uid__isnull=False,
            )
            .values("runner_pid", "sandbox_uid")
            .first()
        )

    async def scenario(agent: Agent) -> None:
        row = await poll(agent, started_warm)
        assert row, "the run never started in a warm sandbox"
        assert nice(row["runner_pid"]) == settings.SYSOPS_RUN_NICE == -5
        sandboxed = sandbox_pids(row["sandbox_uid"])
        assert sandboxed and {nice(pid) for pid in sandboxed} == {-5}
        assert nice(os.getpid()) == 0
        await agent.db(lambda: Run.objects.filter(pk=run.pk).update(cancel_requested=True))

    asyncio.run(with_agent(scenario))


def test_the_form_socket_page_waits_for_the_hand_over_and_never_long():
    """A run queued in this process (live.run_queued: expect_start) is handed to a runner
    before its page is rendered (wait_started returns then, the run claimed); a run that stays
    queued behind another is waited for only as long as asked; a run never expected, not at
    all."""
    from sysops.models import Run

    async def waited_s(agent, run_id: int, timeout_s: float) -> float:
        started = time.monotonic()
        await asyncio.to_thread(agent.wait_started, run_id, timeout_s)
        return time.monotonic() - started

    async def scenario(agent):
        assert await waited_s(agent, 987654, 30) < 1

        first = await agent.db(lambda: getppid_run("python", iterations=1_000_000, repetitions=30))
        agent.expect_start(first.pk)
        agent.wake_threadsafe()
        assert await waited_s(agent, first.pk, 60) < 30
        status = await agent.db(
            lambda: Run.objects.values_list("status", flat=True).get(pk=first.pk)
        )
        assert status == Run.Status.RUNNING

        # max_running=1: the next run stays queued while the first one runs.
        second = await agent.db(lambda: getppid_run("python", iterations=1000, repetitions=5))
        agent.expect_start(second.pk)
        agent.wake_threadsafe()
        assert 0.3 <= await waited_s(agent, second.pk, 0.4) < 5
        status = await agent.db(
            lambda: Run.objects.values_list("status", flat=True).get(pk=second.pk)
        )
        assert status == Run.Status.QUEUED
        await agent.db(lambda: Run.objects.filter(pk=second.pk).update(status=Run.Status.CANCELLED))
        await agent.db(lambda: Run.objects.filter(pk=first.pk).update(cancel_requested=True))

    asyncio.run(with_agent(scenario))


def test_a_stopped_agent_leaves_no_descriptor_of_its_runners_behind():
    """The embedded agent lives in the web server: every pidfd and pipe it held on a runner or
    a spare is closed once that runner ended or the agent stopped."""
    from sysops.models import Run

    def held() -> list[str]:
        links = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                links.append(os.readlink(f"/proc/self/fd/{fd}"))
        return sorted(link for link in links if "pidfd" in link or link.startswith("pipe:"))

    before = held()

    async def scenario(agent):
        run = await agent.db(lambda: getppid_run("python", iterations=1000, repetitions=5))
        agent.wake_threadsafe()
        assert await poll(agent, lambda: Run.objects.filter(pk=run.pk, status="succeeded").exists())

    asyncio.run(with_agent(scenario))
    assert held() == before
