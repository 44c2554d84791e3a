"""A spare runner's head start: while it waits for a run, it leases a sandbox uid, stages the code
and starts the worker in a sandbox with the default policy, where the worker waits for its job
on stdin. A run whose policy is that one (most are) starts measuring at once; any other run gets
a sandbox of its own as before, and the ready one is thrown away.

Loading Django and staging cost about a second of CPU, taken while another run may be
measuring: the agent keeps a spare at low priority (``low_priority``) while a run runs, and
the sandbox's processes are back at normal priority before the job reaches them (``take``).
(SCHED_IDLE starved spares for seconds on a busy host, measured: nice 19 still makes progress.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from django.conf import settings

from sysops import sandbox
from sysops.agent import rundirs

log = logging.getLogger(__name__)
# The name of a spare's work directory before it has a run: run ids start at 1.
SPARE_RUN_ID = 0
LOW_PRIORITY_NICE = 19


@dataclass
class WarmSandbox:
    policy: sandbox.Policy
    proc: sandbox.SandboxProcess
    events_r: int  # the runner's end of the events pipe
    events_fd: int  # the worker's end, by its number inside the sandbox

    def fits(self, policy: sandbox.Policy) -> bool:
        """True when ``policy`` is the one this sandbox started with; the wall-clock limit is
        the runner's to enforce, so it may differ."""
        return self.proc.poll() is None and replace(policy, wall_s=0) == replace(
            self.policy, wall_s=0
        )

    def take(self) -> None:
        """The run takes it: every process of the sandbox's uid (the run's alone) at a run's
        priority (run_priority), whatever the spare's was when it started them."""
        if os.geteuid() == 0 and self.policy.sandbox_uid is not None:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_USER, self.policy.sandbox_uid, settings.SYSOPS_RUN_NICE)

    def discard(self) -> None:
        os.close(self.events_r)
        self.proc.kill()
        with contextlib.suppress(sandbox.SandboxCleanupError):
            self.proc.cleanup()


@dataclass
class Prepared:
    lease: sandbox.UidLease
    work_dir: Path
    warm: WarmSandbox | None

    @property
    def code_dir(self) -> Path:
        return self.work_dir / "code"

    def take_warm(self, policy: sandbox.Policy) -> WarmSandbox | None:
        """The ready sandbox if it fits ``policy`` (then it is the caller's), else None (and
        it is thrown away)."""
        warm, self.warm = self.warm, None
        if warm is not None and warm.fits(policy):
            warm.take()
            return warm
        if warm is not None:
            warm.discard()
        return None

    def discard(self) -> None:
        """Everything a run did not take."""
        if self.warm is not None:
            self.warm.discard()
            self.warm = None
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.lease.release()


def prepare() -> Prepared | None:
    """Everything a run needs before its id is known; None where this host cannot sandbox
    (the run then takes the ordinary path and says why)."""
    report = sandbox.cached_host_report()
    cgroups = report.check("cgroups")
    if not report.can_sandbox or (cgroups is not None and not cgroups.ok):
        return None
    try:
        lease = sandbox.lease_uid()
    except sandbox.UidUnavailable:
        return None
    work_dir = rundirs.make(settings.SYSOPS_RUN_DIR, SPARE_RUN_ID)
    prepared = Prepared(lease, work_dir, None)
    try:
        prepared.code_dir.mkdir(mode=0o755)
        sandbox.stage_code(prepared.code_dir)
        low_priority(False)
        prepared.warm = _start_warm(default_policy(prepared.code_dir, lease.uid))
    except Exception:  # noqa: BLE001 - a head start that fails is only a slower start
        log.exception("could not prepare a sandbox ahead of its run")
        prepared.discard()
        return None
    return prepared


def warm_up_forms() -> None:
    """Each experiment's form built and validated once: the first time costs 8-16 ms (measured
    on a quiet 2-core host), which a run's parameters would otherwise pay."""
    from sysops.experiments import registry
    from sysops.models import Run

    for experiment in registry.catalog():
        try:
            experiment.clean_params(experiment.form_data({}, Run.TraceMode.OFF))
        except Exception:  # noqa: BLE001 - a warm-up that fails is only a slower start
            log.exception("could not warm up the form of %s", experiment.slug)


def warm_up_queries() -> None:
    """A run read once: the first read of a run in a process cost ~2.5 ms more than the next
    (Django fills its per-field caches then, measured on a quiet host), and a fork server's
    spares inherit them."""
    from sysops.models import Run

    Run.objects.filter(pk=0).first()


def open_connection() -> None:
    """The database connection opened before the run id comes: opening it and reading the
    run cost 15-120 ms of a run's start (measured)."""
    from sysops.models import Run

    Run.objects.filter(pk=SPARE_RUN_ID).only("id").first()


def check_connection() -> None:
    """The connection opened while waiting may have died meanwhile (PostgreSQL restarted): a
    dead one is dropped, and the run's first query opens a new one."""
    from django.db import connection

    if connection.connection is not None and not connection.is_usable():
        connection.close()


def default_policy(code_dir: Path, uid: int) -> sandbox.Policy:
    """The policy of a run that asks for no limits of its own (runner.build_policy)."""
    return sandbox.Policy(
        code_dir=code_dir,
        cpus=settings.SYSOPS_RUN_CPUS,
        allow_unbounded=settings.SYSOPS_ALLOW_UNBOUNDED,
        sandbox_uid=uid,
    )


def _start_warm(policy: sandbox.Policy) -> WarmSandbox:
    events_r, events_w = os.pipe()
    try:
        proc = sandbox.start(
            policy,
            sandbox.worker_command(policy),
            pass_fds=(events_w,),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except BaseException:
        os.close(events_r)
        raise
    finally:
        os.close(events_w)
    return WarmSandbox(policy, proc, events_r, events_w)


def run_priority(pid: int) -> None:
    """A runner that has its run: SYSOPS_RUN_NICE (the sandboxes it starts inherit it), where
    it can be set (root)."""
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, settings.SYSOPS_RUN_NICE)


def low_priority(low: bool, pid: int = 0) -> None:
    """Nice 19 (a small share of a CPU others want) or back to 0, for process ``pid`` (0: this
    one). Only where it can come back (root): a worker started at nice 19 would measure at
    nice 19."""
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, LOW_PRIORITY_NICE if low else 0)
