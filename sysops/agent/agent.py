"""The agent: claims queued runs and keeps at most N runners going.

Embedded mode runs it as a task on the web server's own event loop (the in-memory channel layer
lives there); scaled mode runs it alone as ``manage.py run_agent``. Same code in both.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from sysops import dbretry, live, sandbox
from sysops.agent import rundirs, scratch
from sysops.models import Run

log = logging.getLogger(__name__)
T = TypeVar("T")

POLL_INTERVAL_S = 1.0
RECOVER_INTERVAL_S = 10.0
# A runner flushes a heartbeat at least every 2 s; one silent this long is gone.
STALE_HEARTBEAT_S = 60.0


def child_database_url() -> str:
    """The database this process uses (the test database under tests), for runner processes."""
    d = connection.settings_dict
    if d["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{d['NAME']}"
    from urllib.parse import quote

    auth = quote(d.get("USER") or "")
    if d.get("PASSWORD"):
        auth += ":" + quote(d["PASSWORD"])
    host = d.get("HOST") or "localhost"
    port = f":{d['PORT']}" if d.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{d['NAME']}"


def _runner_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"sysops.agent.runner_process" in f.read()
    except OSError:
        return False


def _starting_elsewhere(run: Run, agent: Agent) -> bool:
    """True while another agent on this host that claimed ``run`` is still starting its runner
    (it records the runner's pid just after): the run is not orphaned while that agent lives."""
    if run.runner_pid is not None or run.claimed_by == agent.agent_id:
        return False
    pid = run.claimed_by.rpartition(":")[2]
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass  # alive, another user's
    return True


class Agent:
    def __init__(self, *, max_running: int | None = None) -> None:
        self.max_running = max_running or settings.SYSOPS_MAX_RUNNING
        self.hostname = socket.gethostname()
        self.agent_id = f"{self.hostname}:{os.getpid()}"
        # The name runs are pinned to (Run.pinned_host): several agents may share a machine's
        # hostname (network namespaces, containers), so the operator may name the host.
        self.host_name = settings.SYSOPS_HOST_NAME or self.hostname
        self.running: dict[int, asyncio.subprocess.Process | None] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        # The agent's own database thread: not asgiref's shared executor, whose worker thread a
        # forked server process (tests' live server) would inherit without the thread itself.
        self._db_thread: ThreadPoolExecutor | None = None
        # A runner started ahead of time (interpreter and Django already loaded) that waits for
        # its run id: a claimed run starts without paying for the start-up.
        self._spare: asyncio.subprocess.Process | None = None

    # --- called from other threads (views) ------------------------------------------------------
    def is_running(self) -> bool:
        """False once the loop it runs on is closed (a test's loop, say)."""
        return self.loop is None or not self.loop.is_closed()

    def wake_threadsafe(self) -> None:
        if self.loop is not None and self._wake is not None:
            self.loop.call_soon_threadsafe(self._wake.set)

    def publish_threadsafe(self, group: str, message: dict[str, Any]) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._spawn, self.publish(group, message))

    # --- on the agent's loop --------------------------------------------------------------------
    async def publish(self, group: str, message: dict[str, Any]) -> None:
        await live.send(group, message)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the agent's database thread, off the event loop."""
        if self._db_thread is None:
            self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="sysops-agent-db")
        return await asyncio.get_running_loop().run_in_executor(
            self._db_thread, functools.partial(_with_fresh_connection, fn, *args)
        )

    async def run_forever(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        log.info("agent %s started (max %d running)", self.agent_id, self.max_running)
        # What this host allows, probed once at start-up (off the loop) for the dashboard.
        report = await self.db(sandbox.cached_host_report)
        log.info("sandbox: %s", report.reason)
        last_recover = -RECOVER_INTERVAL_S
        while not self._stopping:
            try:
                if self.loop.time() - last_recover >= RECOVER_INTERVAL_S:
                    last_recover = self.loop.time()
                    for run_id in await self.db(self.recover_stale):
                        await self._announce(run_id)
                while len(self.running) < self.max_running:
                    run_id = await self.db(self.claim_next)
                    if run_id is None:
                        break
                    self.running[run_id] = None
                    self._spawn(self._run(run_id))
            except Exception:
                log.exception("agent loop error; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL_S)

    async def stop(self) -> None:
        """Stop claiming; ask runners to stop (each records why) and wait for them."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        for proc in [*self.running.values(), self._spare]:
            if proc is not None and proc.returncode is None:
                proc.terminate()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=15)

    def claim_next(self) -> int | None:
        """Claim the next run this agent may take (RunQuerySet.claim_next); None when none."""
        return Run.objects.claim_next(by=self.agent_id, host_name=self.host_name)

    def recover_stale(self) -> list[int]:
        """Finish runs left `running` by a runner that is gone, and remove what such runners left
        on this host (their cgroups, scratch disks and work directories). Returns the runs it
        finished."""
        swept = sandbox.sweep_orphaned_cgroups()
        if swept:
            log.info("removed cgroups of dead runners: %s", ", ".join(swept))
        # Scratch disks first: a work directory with a mount inside is left alone.
        swept = scratch.sweep_stale()
        if swept:
            log.info("removed scratch directories of dead runners: %s", ", ".join(swept))
        swept = rundirs.sweep_stale(settings.SYSOPS_RUN_DIR)
        if swept:
            log.info("removed work directories of dead runners: %s", ", ".join(swept))
        now = timezone.now()
        finished = []
        for run in Run.objects.filter(status=Run.Status.RUNNING).only(
            "id", "claimed_by", "runner_pid", "heartbeat_at"
        ):
            if run.pk in self.running:
                continue
            here = run.claimed_by.startswith(f"{self.hostname}:")
            if here and not _runner_alive(run.runner_pid) and not _starting_elsewhere(run, self):
                reason = "runner died (process gone); found and finished by the agent"
            elif run.heartbeat_at and now - run.heartbeat_at > timedelta(seconds=STALE_HEARTBEAT_S):
                reason = f"runner silent for over {STALE_HEARTBEAT_S:g} s; finished by the agent"
            else:
                continue
            if Run.objects.finish(run.pk, Run.Status.FAILED, reason):
                finished.append(run.pk)
        return finished

    async def _announce(self, run_id: int) -> None:
        for group, message in live.status_messages(run_id):
            await self.publish(group, message)

    async def _start_runner(self) -> asyncio.subprocess.Process:
        """A runner process that waits for a run id on its stdin."""
        env = {**os.environ, "DATABASE_URL": await self.db(child_database_url)}
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sysops.agent.runner_process",
            "--wait",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(settings.BASE_DIR),
            limit=1 << 24,
        )

    async def _take_runner(self) -> asyncio.subprocess.Process:
        spare, self._spare = self._spare, None
        if spare is None or spare.returncode is not None:
            spare = await self._start_runner()
        if not self._stopping:
            self._spare = await self._start_runner()
        return spare

    async def _run(self, run_id: int) -> None:
        await self._announce(run_id)
        try:
            proc = await self._take_runner()
            assert proc.stdin is not None
            proc.stdin.write(f"{run_id}\n".encode())
            await proc.stdin.drain()
            proc.stdin.close()
            self.running[run_id] = proc
            await self.db(_set_runner_pid, run_id, proc.pid)
            assert proc.stdout is not None
            async for line in proc.stdout:
                try:
                    envelope = json.loads(line)
                    await self.publish(envelope["group"], envelope["message"])
                except (ValueError, KeyError, TypeError):
                    log.warning("run %s: bad line from runner: %r", run_id, line[:200])
            code = await proc.wait()
            if await self.db(self._fail_if_unfinished, run_id, code):
                await self._announce(run_id)
        except Exception:
            log.exception("run %s: could not supervise the runner", run_id)
            await self.db(self._fail_if_unfinished, run_id, None)
            await self._announce(run_id)
        finally:
            self.running.pop(run_id, None)
            if self._wake is not None:
                self._wake.set()

    def _fail_if_unfinished(self, run_id: int, code: int | None) -> bool:
        reason = f"runner exited with status {code} before finishing the run"
        return Run.objects.finish(run_id, Run.Status.FAILED, reason)


def _with_fresh_connection(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a connection of its own; while the database is unreachable (PostgreSQL
    restarting, say) the agent waits for it rather than dropping the run it supervises."""
    close_old_connections()
    try:
        return dbretry.retry_unreachable(functools.partial(fn, *args), what="agent")
    finally:
        close_old_connections()


def _set_runner_pid(run_id: int, pid: int) -> None:
    Run.objects.filter(pk=run_id).update(runner_pid=pid)


def ensure_embedded_agent() -> None:
    """Start the embedded agent on the running loop once per process (embedded mode only)."""
    if not settings.SYSOPS_EMBEDDED_AGENT or live.local_agent() is not None:
        return  # (a new loop in this process, as in tests, gets a new agent)
    agent = Agent()
    live.register_local_agent(agent)
    agent._spawn(agent.run_forever())
