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
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.utils import timezone

from sysops import dbretry, live, sandbox
from sysops.agent import forkserver, rundirs, scratch, warm
from sysops.agent.link import database_name
from sysops.experiments import registry
from sysops.models import Host, HostAgent, Run
from sysops.worker.fingerprint import fingerprint

log = logging.getLogger(__name__)
T = TypeVar("T")
# A runner process: started by the agent, or forked by its fork server.
Runner = asyncio.subprocess.Process | forkserver.ForkedRunner

POLL_INTERVAL_S = 1.0
# An agent hearing queued runs over the channel layer joins its group again this often (a
# group membership expires in channels_redis, and Redis may have restarted meanwhile).
AGENTS_GROUP_REJOIN_S = 60.0
RECOVER_INTERVAL_S = 10.0
# A runner flushes a heartbeat at least every 2 s; one silent this long is gone.
STALE_HEARTBEAT_S = 60.0
# A runner closes its link just before it exits; its last batches are published first.
LINK_DRAIN_TIMEOUT_S = 5.0
RUNNER_EXIT_WAIT_S = 5.0
SPARE_RUNNERS = 2
# A new spare is forked once the run that took one has published its first batch (and that
# batch has had time to reach the browsers), or this long after the run started.
SPARE_REFILL_DELAY_S = 1.0
SPARE_REFILL_AFTER_BATCH_S = 0.3
# A run page is told that its run started only when no batch has said so this long after.
ANNOUNCE_DELAY_S = 0.3
# Runs expected to start (expect_start) that nobody waited for are forgotten past this many.
MAX_START_WAITS = 256
# When the queue moves, this many queued runs' pages are told their new place (the others show
# theirs when they are loaded).
QUEUE_PLACES_ANNOUNCED = 20


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
        # The name runs are pinned to (Run.pinned_host): several agents may share a machine's
        # hostname (network namespaces, containers), so the operator may name the host.
        self.host_name = settings.SYSOPS_HOST_NAME
        self.agent_id = f"{self.host_name}:{os.getpid()}"
        self.running: dict[int, Runner | None] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        # The agent's own database thread: not asgiref's shared executor, whose worker thread a
        # forked server process (tests' live server) would inherit without the thread itself.
        self._db_thread: ThreadPoolExecutor | None = None
        # Runners started ahead of time (interpreter and Django already loaded, a sandbox
        # ready: sysops.agent.warm), each waiting for a run id: a claimed run starts without
        # paying for the start-up. Oldest first: the readiest.
        self._spares: list[Runner] = []
        self._forks: forkserver.ForkServer | None = None
        # Where runners publish their batches (sysops.agent.link), and the runs whose runner is
        # connected now, each with an event set when its link closes.
        self.socket_path: Path | None = None
        self._server: asyncio.AbstractServer | None = None
        self._links: dict[int, asyncio.Event] = {}
        # Per run handed to a runner, until it ends: set once its first batch is published (then
        # a new spare is forked).
        self._started: dict[int, asyncio.Event] = {}
        # Running timing runs (nothing starts beside them), and a timing run claimed while
        # others ran, waiting for them to end.
        self._timing: set[int] = set()
        self._held: int | None = None
        # Since when this agent's own heartbeats have reached the database without a gap as
        # long as the expiry: before that, other agents' silence may be the database's.
        self._beating_since: datetime | None = None
        self._hearing: asyncio.Task[Any] | None = None
        self._last_beat: datetime | None = None
        # Runs queued in this process whose page waits to be rendered until the run is handed
        # to a runner (expect_start, wait_started), each with the event that says so.
        self._start_waits: dict[int, threading.Event] = {}
        self._start_waits_lock = threading.Lock()

    # --- called from other threads (views) ------------------------------------------------------
    def is_running(self) -> bool:
        """False once the loop it runs on is closed (a test's loop, say)."""
        return self.loop is None or not self.loop.is_closed()

    def wake_threadsafe(self) -> None:
        if self.loop is not None and self._wake is not None:
            self.loop.call_soon_threadsafe(self._wake.set)

    def expect_start(self, run_id: int) -> None:
        """Before the agent hears of ``run_id``: wait_started will wait for its start."""
        with self._start_waits_lock:
            while len(self._start_waits) >= MAX_START_WAITS:  # runs nobody waited for
                del self._start_waits[next(iter(self._start_waits))]
            self._start_waits[run_id] = threading.Event()

    def wait_started(self, run_id: int, timeout_s: float) -> None:
        """Block (not on the agent's loop) until ``run_id``, expected, is handed to a runner,
        held for the CPUs or over, or for ``timeout_s`` at most (it may be queued behind others).
        The form's socket renders the run page after it: the claim goes first on this busy
        process, and the page shows the run as it is by then."""
        with self._start_waits_lock:
            event = self._start_waits.get(run_id)
        if event is not None:
            event.wait(timeout_s)
        with self._start_waits_lock:
            self._start_waits.pop(run_id, None)

    def _started_now(self, run_id: int) -> None:
        with self._start_waits_lock:
            event = self._start_waits.pop(run_id, None)
        if event is not None:
            event.set()

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
            self._db_thread, functools.partial(_with_connection, fn, *args)
        )

    async def run_forever(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await self._listen()
        log.info("agent %s started (max %d running)", self.agent_id, self.max_running)
        # What this host allows, probed once at start-up (off the loop) for the dashboard.
        report = await self.db(sandbox.cached_host_report)
        log.info("sandbox: %s", report.reason)
        await self.db(self.register, report)
        await self._start_fork_server()
        await self._refill_spare()  # the first run starts as fast as the next ones
        if settings.REDIS_URL:
            self._hearing = self._spawn(self._hear_queued_runs())
        # Another agent's death is noticed within its expiry, not only at the next slow sweep.
        recover_interval_s = min(RECOVER_INTERVAL_S, settings.SYSOPS_AGENT_EXPIRY_S)
        last_recover = last_beat = -RECOVER_INTERVAL_S
        while not self._stopping:
            try:
                if self.loop.time() - last_beat >= settings.SYSOPS_AGENT_HEARTBEAT_S:
                    last_beat = self.loop.time()
                    await self.db(self.heartbeat)
                if self.loop.time() - last_recover >= recover_interval_s:
                    last_recover = self.loop.time()
                    for run_id in await self.db(self.recover_stale):
                        await self._announce(run_id)
                    if self._held is not None:  # alive, only waiting for its turn
                        await self.db(_beat, self._held)
                await self._schedule()
            except Exception:
                log.exception("agent loop error; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL_S)

    async def _schedule(self) -> None:
        """Claim and start runs while there is room. A timing run (Experiment.timing) has the
        CPUs to itself: nothing is claimed beside one, and one claimed while other runs run
        waits, claimed and saying so, until they have ended."""
        if self._held is not None:
            if set(self.running) == {self._held}:
                run_id, self._held = self._held, None
                await self.db(_mark_waiting, run_id, [])
                await self._start(run_id, timing=True)
            return
        claimed = False
        while len(self.running) < self.max_running and not self._timing & set(self.running):
            taken = await self.db(self._claim)
            if taken is None:
                break
            run_id, timing = taken
            claimed = True
            self.running[run_id] = None
            others = sorted(set(self.running) - {run_id})
            if timing and others:
                self._held = run_id
                await self.db(_mark_waiting, run_id, others)
                self._started_now(run_id)
                await self._announce(run_id)
                break
            await self._start(run_id, timing=timing)
        if claimed:
            await self._announce_queue()

    async def _start(self, run_id: int, *, timing: bool) -> None:
        """Hand the run to a runner; runs beside it (and it) record that they overlapped."""
        if timing:
            self._timing.add(run_id)
        others = sorted(set(self.running) - {run_id})
        if others:
            await self.db(_record_overlap, run_id, others)
            for other in others:
                await self._announce(other)
        self._spawn(self._run(run_id))

    async def stop(self) -> None:
        """Stop claiming; ask runners to stop (each records why) and wait for them."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._held is not None:  # back to the queue, for the next agent
            await self.db(Run.objects.release, self._held)
            self.running.pop(self._held, None)
            self._held = None
        if self._server is not None:
            self._server.close()
            if self.socket_path is not None and self.socket_path != Path(
                settings.SYSOPS_AGENT_SOCKET
            ):
                # This agent's own socket (another held the install's): nobody else will use it.
                # The install's stays: the next agent may already be listening there.
                self.socket_path.unlink(missing_ok=True)
        if self._hearing is not None:
            self._hearing.cancel()
        for proc in [*self.running.values(), *self._spares]:
            if proc is not None and _alive(proc):
                proc.terminate()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=15)
        if self._forks is not None:  # after the runners it forked have said how they ended
            await self._forks.stop()
        # The spares were told to stop: what this process holds of them goes too (an agent
        # stopped in a long-lived process, a test's, left two pipes and two pidfds each time).
        for spare in self._spares:
            if isinstance(spare, forkserver.ForkedRunner):
                spare.close()
            elif spare.stdin is not None:
                spare.stdin.close()
        self._spares.clear()
        try:
            await self.db(self.unregister)
        except Exception:
            log.exception("could not record that this agent stopped: it shows gone once silent")
        if self._db_thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._db_thread, _close_connection)

    async def _hear_queued_runs(self) -> None:
        """Scaled mode: the web app announces each queued run to every agent (live.AGENTS_GROUP
        over Redis), so a claim follows a submit at once rather than at the next poll. The poll
        stays: an announcement lost while Redis is down costs a second, not the run."""
        layer = get_channel_layer()
        assert layer is not None and self.loop is not None and self._wake is not None
        channel = await layer.new_channel()
        joined_at = None
        while not self._stopping:
            try:
                if joined_at is None or self.loop.time() - joined_at > AGENTS_GROUP_REJOIN_S:
                    await layer.group_add(live.AGENTS_GROUP, channel)
                    joined_at = self.loop.time()
                await asyncio.wait_for(layer.receive(channel), AGENTS_GROUP_REJOIN_S)
                self._wake.set()
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - the layer is down: the poll carries on meanwhile
                joined_at = None
                await asyncio.sleep(POLL_INTERVAL_S)

    def register(self, report: sandbox.HostReport) -> None:
        """Say in the database who this agent is, on which host, with which sandbox."""
        host = Host.for_fingerprint({**fingerprint(), "hostname": self.host_name})
        now = self._beating_since = self._last_beat = timezone.now()
        forgotten = now - timedelta(seconds=HostAgent.FORGOTTEN_AFTER_S)
        HostAgent.objects.filter(heartbeat_at__lt=forgotten).delete()
        HostAgent.objects.update_or_create(
            agent_id=self.agent_id,
            defaults={
                "name": self.host_name,
                "host": host,
                "sandbox": report.to_dict(),
                "max_running": self.max_running,
                "running": len(self.running),
                "started_at": now,
                "heartbeat_at": now,
                "stopped_at": None,
            },
        )

    def heartbeat(self) -> None:
        now = timezone.now()
        HostAgent.objects.filter(agent_id=self.agent_id).update(
            heartbeat_at=now, running=len(self.running)
        )
        if self._last_beat is None or now - self._last_beat > _expiry():
            self._beating_since = now  # cut off from the database, as the others were
        self._last_beat = now

    def _may_judge_others(self, now: datetime) -> bool:
        """Whether other agents have had an expiry's time to heartbeat since this one could:
        after a database outage (or at start-up) their silence proves nothing yet."""
        return self._beating_since is not None and now - self._beating_since > _expiry()

    def unregister(self) -> None:
        HostAgent.objects.filter(agent_id=self.agent_id).update(
            stopped_at=timezone.now(), running=0
        )

    def claim_next(self) -> int | None:
        """Claim the next run this agent may take (RunQuerySet.claim_next); None when none."""
        return Run.objects.claim_next(by=self.agent_id, host_name=self.host_name)

    def _claim(self) -> tuple[int, bool] | None:
        """claim_next, and whether the run measures timings: one trip to the database thread
        (each costs the claim a wait for the event loop, behind whatever else it is doing)."""
        run_id = self.claim_next()
        return None if run_id is None else (run_id, _is_timing(run_id))

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
        running = Run.objects.filter(status=Run.Status.RUNNING).only(
            "id", "claimed_by", "runner_pid", "heartbeat_at"
        )
        claimants = HostAgent.objects.filter(agent_id__in={run.claimed_by for run in running})
        gone_agents = (
            {agent.agent_id: agent for agent in claimants if agent.is_gone}
            if self._may_judge_others(now)
            else {}
        )
        for run in running:
            if run.pk in self.running:
                continue
            here = run.claimed_by.startswith(f"{self.host_name}:")
            agent = gone_agents.get(run.claimed_by)
            if here and not _runner_alive(run.runner_pid) and not _starting_elsewhere(run, self):
                reason = (
                    "its runner died (the process is gone: killed, or the host restarted) "
                    "before finishing the run; what it recorded is kept"
                )
            elif agent is not None and _silent(run, now):
                # A runner still writing its heartbeat outlived its agent: let it finish.
                reason = agent.gone_reason()
            elif run.heartbeat_at and now - run.heartbeat_at > timedelta(seconds=STALE_HEARTBEAT_S):
                reason = f"runner silent for over {STALE_HEARTBEAT_S:g} s; finished by the agent"
            else:
                continue
            if Run.objects.finish(run.pk, Run.Status.FAILED, reason):
                finished.append(run.pk)
        return finished

    async def _announce_queue(self) -> None:
        """The queue moved: the pages of the runs at its head show their new place."""
        for run_id in await self.db(_queue_head):
            await self.publish(live.run_group(run_id), {"type": "run.refresh", "run": run_id})

    async def _announce(self, run_id: int) -> None:
        for group, message in live.status_messages(run_id):
            await self.publish(group, message)

    async def _listen(self) -> None:
        """Listen where runners publish: the install's socket, unless another live agent has
        it (then one of this agent's own, which runners of a later agent will not find)."""
        path = Path(settings.SYSOPS_AGENT_SOCKET)
        if await _listening(path):
            path = path.with_name(f"agent-{os.getpid()}-{id(self)}.sock")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by an agent that was killed
        self._server = await asyncio.start_unix_server(
            self._on_runner, path=str(path), limit=1 << 24
        )
        self.socket_path = path

    async def _on_runner(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One runner's batches. A runner this agent did not start (its agent died, the web
        server restarted) is adopted: counted as running, its viewers get a snapshot, and its
        run is checked when it ends."""
        try:
            hello = json.loads(await reader.readline())
            run_id, pid = int(hello["run"]), int(hello["pid"])
            if hello.get("database") != await self.db(database_name):
                return  # a runner of another install or of the tests
        except (ValueError, KeyError, TypeError):
            writer.close()
            return
        done = self._links[run_id] = asyncio.Event()
        adopted = run_id not in self.running
        if adopted:
            log.info("run %s: adopted its runner (pid %s)", run_id, pid)
            self.running[run_id] = None
            if await self.db(_is_timing, run_id):
                self._timing.add(run_id)
            await self._announce(run_id)
        try:
            async for line in reader:
                try:
                    envelope = json.loads(line)
                    await self.publish(envelope["group"], envelope["message"])
                except (ValueError, KeyError, TypeError):
                    log.warning("run %s: bad line from runner: %r", run_id, line[:200])
                    continue
                started = self._started.get(run_id)
                if started is not None and envelope["message"].get("type") == "run.batch":
                    started.set()
                if envelope["message"].get("status") in Run.TERMINAL:
                    self._ended(run_id)
        except ConnectionError:
            pass
        finally:
            writer.close()
            done.set()
            if self._links.get(run_id) is done:
                del self._links[run_id]
        if adopted and await _gone(pid):
            reason = (
                "its runner stopped before finishing the run (the run was adopted after a restart)"
            )
            if await self.db(self._fail_if_unfinished, run_id, None, reason):
                await self._announce(run_id)
        if adopted:  # (a runner still alive connects again)
            self.running.pop(run_id, None)
            self._timing.discard(run_id)
            if self._wake is not None:
                self._wake.set()

    def _ended(self, run_id: int) -> None:
        """The run's final state is recorded: the next run may start while its runner cleans
        up and exits (it measures nothing any more)."""
        self.running.pop(run_id, None)
        self._timing.discard(run_id)
        self._prioritise_spares()
        if self._wake is not None:
            self._wake.set()

    async def _start_runner(self) -> Runner:
        """A runner process that waits for a run id on its stdin, forked by the fork server
        (sysops.agent.forkserver) or, without one, started on its own. Its own session: a
        Ctrl-C of the server, or its death, does not end the runs."""
        if self._forks is not None and self._forks.alive:
            try:
                return await self._forks.fork()
            except (OSError, TimeoutError):
                log.exception("the fork server failed; runners start on their own from now on")
                self._forks.close()
        env = {**os.environ, "DATABASE_URL": await self.db(child_database_url)}
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sysops.agent.runner_process",
            "--wait",
            "--agent-socket",
            str(self.socket_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            env=env,
            cwd=str(settings.BASE_DIR),
            start_new_session=True,
        )

    async def _start_fork_server(self) -> None:
        """The fork server that makes spares cheap; without it (it would not start), spares
        start on their own, as slowly as before."""
        forks = forkserver.ForkServer()
        env = {**os.environ, "DATABASE_URL": await self.db(child_database_url)}
        try:
            await forks.start(
                forkserver.fork_server_argv(self.socket_path), env=env, cwd=str(settings.BASE_DIR)
            )
        except (OSError, TimeoutError, ConnectionError):
            log.exception("the fork server did not start; spares start on their own")
            await forks.stop()
            return
        self._forks = forks

    async def _take_runner(self) -> Runner:
        self._spares = [spare for spare in self._spares if _alive(spare)]
        if self._spares:
            return self._spares.pop(0)
        return await self._start_runner()

    async def _refill_spare(self) -> None:
        # Two: a spare loads at low priority and, on a busy host, takes longer than a short
        # run plus a person's next click (measured: 1-5 s at a load average of 10-20).
        while not self._stopping and len(self._spares) < SPARE_RUNNERS:
            self._spares.append(await self._start_runner())
        self._prioritise_spares()

    async def _after_start(self, run_id: int, started: asyncio.Event) -> None:
        """Once the run has published its first batch, or a while after it started: dashboards
        show it running (at once), its pages re-read it (only if no batch came: a batch says
        it runs), and a new spare is made. Until then the run's first figure has the CPUs: a
        page re-reading the run and a fork cost a 2-core host tens of milliseconds."""
        await self.publish(live.RUNS_GROUP, live.runs_changed(run_id))
        try:
            await asyncio.wait_for(started.wait(), ANNOUNCE_DELAY_S)
        except TimeoutError:
            await self.publish(live.run_group(run_id), live.run_refresh(run_id))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(started.wait(), SPARE_REFILL_DELAY_S - ANNOUNCE_DELAY_S)
        else:
            # The batch is on its way to the browsers: let it get there (and be drawn) first.
            await asyncio.sleep(SPARE_REFILL_AFTER_BATCH_S)
        await self._refill_spare()

    def _prioritise_spares(self) -> None:
        """Spares load (about a second of CPU each) at low priority while a run may be
        measuring, at full speed when none is."""
        for spare in self._spares:
            warm.low_priority(bool(self.running), spare.pid)

    async def _run(self, run_id: int) -> None:
        try:
            proc = await self._take_runner()
            # A spare still loading at low priority would keep the run waiting at that priority.
            warm.run_priority(proc.pid)
            assert proc.stdin is not None
            proc.stdin.write(f"{run_id}\n".encode())
            await proc.stdin.drain()
            proc.stdin.close()
            self._started_now(run_id)
            self.running[run_id] = proc
            started = self._started[run_id] = asyncio.Event()  # before its runner can publish
            self._spawn(self._after_start(run_id, started))
            await self.db(_set_runner_pid, run_id, proc.pid)
            code = await proc.wait()
            link = self._links.get(run_id)
            if link is not None:  # its last batches, published before the verdict
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(link.wait(), LINK_DRAIN_TIMEOUT_S)
            if await self.db(self._fail_if_unfinished, run_id, code):
                await self._announce(run_id)
        except Exception:
            log.exception("run %s: could not supervise the runner", run_id)
            await self.db(self._fail_if_unfinished, run_id, None)
            await self._announce(run_id)
        finally:
            self._started_now(run_id)
            started = self._started.pop(run_id, None)
            if started is not None:  # a refill still waiting for it goes ahead
                started.set()
            self.running.pop(run_id, None)
            self._timing.discard(run_id)
            self._prioritise_spares()
            if self._wake is not None:
                self._wake.set()

    def _fail_if_unfinished(self, run_id: int, code: int | None, reason: str = "") -> bool:
        status = f" (status {code})" if code is not None else ""
        reason = reason or f"its runner exited{status} before finishing the run"
        return Run.objects.finish(run_id, Run.Status.FAILED, reason)


def _alive(proc: Runner) -> bool:
    return proc.returncode is None and not getattr(proc, "exited", False)


async def _listening(path: Path) -> bool:
    """True when a live process accepts connections on ``path``."""
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
    except OSError:
        return False
    writer.close()
    return True


async def _gone(pid: int) -> bool:
    """Wait (a little) for an adopted runner, not our child, to exit after closing its link;
    False if it is still alive (it closed the link for another reason)."""
    for _ in range(int(RUNNER_EXIT_WAIT_S / 0.1)):
        if not _runner_alive(pid):
            return True
        await asyncio.sleep(0.1)
    return False


def _expiry() -> timedelta:
    return timedelta(seconds=settings.SYSOPS_AGENT_EXPIRY_S)


def _silent(run: Run, now: datetime) -> bool:
    """No heartbeat from the run's runner for an agent's expiry either."""
    return run.heartbeat_at is None or now - run.heartbeat_at > _expiry()


def _with_connection(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the database thread's connection, kept from call to call (opening one
    is a SQLite connection's whole set-up, several a run, on the way to its first figure) and
    replaced when it has died (PostgreSQL restarted) or a call failed; while the database is
    unreachable the agent waits for it rather than dropping the run it supervises."""
    if connection.connection is not None and (
        connection.errors_occurred or not connection.is_usable()
    ):
        connection.close()
    try:
        return dbretry.retry_db(functools.partial(fn, *args), what="agent")
    except BaseException:
        connection.close()
        raise


def _close_connection() -> None:
    connection.close()


def _is_timing(run_id: int) -> bool:
    experiment = registry.get(Run.objects.values_list("experiment", flat=True).get(pk=run_id))
    return experiment is not None and experiment.timing


def _mark_waiting(run_id: int, others: list[int]) -> None:
    """Say on the run's page that it waits for ``others`` to end (nothing when they have)."""
    running = ", ".join(f"#{other}" for other in others)
    message = f"waiting for the CPUs: it measures timings, so it starts when {running} end"
    Run.objects.filter(pk=run_id).update(progress_message=message[:200] if others else "")


def _beat(run_id: int) -> None:
    Run.objects.filter(pk=run_id).update(heartbeat_at=timezone.now())


def _record_overlap(run_id: int, others: list[int]) -> None:
    for target, beside in [(run_id, others), *((other, [run_id]) for other in others)]:
        current = Run.objects.filter(pk=target).values_list("overlapped", flat=True).first()
        if current is not None:
            Run.objects.filter(pk=target).update(overlapped=sorted({*current, *beside}))


def _queue_head() -> list[int]:
    return list(
        Run.objects.filter(status=Run.Status.QUEUED)
        .order_by("id")
        .values_list("id", flat=True)[:QUEUE_PLACES_ANNOUNCED]
    )


def _set_runner_pid(run_id: int, pid: int) -> None:
    Run.objects.filter(pk=run_id).update(runner_pid=pid)


def ensure_embedded_agent() -> None:
    """Start the embedded agent on the running loop once per process (embedded mode only)."""
    if not settings.SYSOPS_EMBEDDED_AGENT or live.local_agent() is not None:
        return  # (a new loop in this process, as in tests, gets a new agent)
    agent = Agent()
    live.register_local_agent(agent)
    agent._spawn(agent.run_forever())
