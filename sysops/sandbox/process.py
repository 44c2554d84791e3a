"""Starting a sandbox, watching it, killing it, explaining how it ended and cleaning up after it."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sysops.sandbox.uids as uids
from sysops.sandbox.bwrap import SANDBOX_PATH, bwrap_argv
from sysops.sandbox.cgroups import CgroupStats, RunCgroup, run_cgroup_name
from sysops.sandbox.host import cached_cgroup_support, cached_host_report
from sysops.sandbox.policy import Policy, resolved_rlimits
from sysops.sandbox.preexec import make_preexec
from sysops.sandbox.seccomp import program_fd
from sysops.sandbox.stage import untraversable_ancestors

# Only these host directories exist inside the sandbox (see bwrap.py).
VISIBLE_INTERPRETER_PREFIXES = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/")
HIDDEN_INTERPRETER_PREFIXES = ("/usr/local/",)
LEFTOVER_TIMEOUT_S = 3.0
ERROR_PIPE_READ_BYTES = 4096
MIB = 1 << 20
# bubblewrap reports a command killed by signal n as exit status 128 + n, like a shell. The
# worker's own exit statuses are small (0, 1, 2), so a status above 128 is read as a signal.
SIGNAL_EXIT_BASE = 128
NO_BOUND = "no memory, pids and cpu cgroup for the run"

Stream = int | IO[Any] | None
_CGROUP_SERIAL = itertools.count()


class SandboxRefused(Exception):
    """The host cannot run this sandbox (and the policy does not allow running without one)."""


class SandboxCleanupError(RuntimeError):
    """Something of the run outlived cleanup(): processes of its uid, or its cgroup."""


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None when killed by a signal
    signal: str | None  # e.g. "SIGKILL"
    limits_hit: list[str] = field(default_factory=list)  # e.g. "RLIMIT_CPU 30 s"
    killed_by_caller: bool = False
    sandboxed: bool = True
    bounded: bool = True  # False: no cgroup (memory, pids, cpu), by the development switch
    cpu_s: float | None = None  # CPU time of the whole run, from its cgroup where there is one
    memory_peak_bytes: int | None = None  # from the run's cgroup, where there is one
    notes: list[str] = field(default_factory=list)  # e.g. why there were no cgroup limits

    def describe(self) -> str:
        """Why the run ended, in words a user can act on."""
        limits = "; ".join(self.limits_hit)
        if self.signal is not None:
            if limits:
                return f"killed by {self.signal}: {limits}"
            if self.killed_by_caller:
                return f"killed by {self.signal} (stopped by the caller)"
            return f"killed by {self.signal}"
        if limits:
            return f"exited with status {self.exit_code} after hitting {limits}"
        return f"exited with status {self.exit_code}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "signal": self.signal,
            "limits_hit": list(self.limits_hit),
            "killed_by_caller": self.killed_by_caller,
            "sandboxed": self.sandboxed,
            "bounded": self.bounded,
            "cpu_s": self.cpu_s,
            "memory_peak_bytes": self.memory_peak_bytes,
            "notes": list(self.notes),
            "reason": self.describe(),
        }


class SandboxProcess:
    """A running sandbox: wraps the Popen of bubblewrap (or of the command, when unsandboxed)."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        *,
        policy: Policy,
        uid: int,
        cgroup: RunCgroup | None,
        notes: list[str],
        workdir: Path | None,
        lease: uids.UidLease | None = None,
    ) -> None:
        self._popen = popen
        self._policy = policy
        self._uid = uid
        self._lease = lease  # released by cleanup(), when nothing of the run is left
        self._cgroup = cgroup
        self._notes = notes
        self._workdir = workdir
        self._started_s = time.monotonic()
        self._killed_by_caller = False
        self._deadline_hit = False
        self._stats: CgroupStats | None = None
        self._outcome: Outcome | None = None
        self._cleaned = False
        self.pid = popen.pid
        self.stdin, self.stdout, self.stderr = popen.stdin, popen.stdout, popen.stderr

    @property
    def uid(self) -> int:
        return self._uid

    @property
    def bounded(self) -> bool:
        """True when the run has its cgroup: memory, pids and cpu bound."""
        return self._cgroup is not None

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for bubblewrap to exit; subprocess.TimeoutExpired after ``timeout`` seconds."""
        return self._popen.wait(timeout)

    def wait_until_deadline(self) -> int:
        """Wait until exit or until policy.wall_s after start, then kill (reported as a limit)."""
        remaining_s = self._started_s + self._policy.wall_s - time.monotonic()
        try:
            return self.wait(max(0.0, remaining_s))
        except subprocess.TimeoutExpired:
            self._deadline_hit = True
            self.kill()
            return self.wait()

    def kill(self) -> None:
        """SIGKILL bubblewrap and every process in the run's cgroup, the sandbox's pid 1 among
        them: when pid 1 dies the kernel kills the whole pid namespace. (--die-with-parent alone
        would also take pid 1 down with bubblewrap; the cgroup-wide kill is the backstop.)
        Without a cgroup (the development switch) the leased uid's processes are killed
        instead: the lease makes that uid this run's alone. Idempotent."""
        if self.poll() is None:
            self._killed_by_caller = True
            # start_new_session made bubblewrap a group leader; its group is bubblewrap itself
            # (the sandbox has its own session) or, unsandboxed, the command and its children.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        if self._cgroup is not None:
            self._cgroup.kill()
        elif uids.is_dedicated(self._uid):
            uids.kill_uid(self._uid)

    def outcome(self) -> Outcome:
        """How the run ended; call after the process has exited (wait())."""
        if self._outcome is not None:
            return self._outcome
        rc = self.poll()
        if rc is None:
            raise RuntimeError("outcome() called while the sandbox is still running")
        if self._stats is None and self._cgroup is not None:
            self._stats = self._cgroup.stats()
        sandboxed = not self._policy.unsandboxed
        signum: int | None = None
        if rc < 0:
            signum = -rc
        elif sandboxed and SIGNAL_EXIT_BASE < rc < SIGNAL_EXIT_BASE + signal.NSIG:
            signum = rc - SIGNAL_EXIT_BASE
        stats = self._stats or CgroupStats()
        cpu_s = round(stats.cpu_s, 3) if stats.cpu_s is not None else None
        self._outcome = Outcome(
            exit_code=None if signum is not None else rc,
            signal=_signal_name(signum) if signum is not None else None,
            limits_hit=self._limits_hit(signum, cpu_s, stats),
            killed_by_caller=self._killed_by_caller,
            sandboxed=sandboxed,
            bounded=self._cgroup is not None,
            cpu_s=cpu_s,
            memory_peak_bytes=stats.memory_peak_bytes,
            notes=list(self._notes),
        )
        return self._outcome

    def _limits_hit(self, signum: int | None, cpu_s: float | None, stats: CgroupStats) -> list[str]:
        policy = self._policy
        hit = []
        if self._deadline_hit:
            hit.append(f"wall clock {policy.wall_s:g} s")
        cpu_hard_kill = (
            signum == signal.SIGKILL
            and not self._killed_by_caller
            and not stats.oom_kills
            and cpu_s is not None
            and cpu_s >= policy.cpu_s
        )
        if signum == signal.SIGXCPU or cpu_hard_kill:
            hit.append(f"RLIMIT_CPU {policy.cpu_s} s")
        if signum == signal.SIGXFSZ:
            hit.append(f"RLIMIT_FSIZE {policy.file_size_bytes} bytes")
        if stats.oom_kills:
            hit.append(f"cgroup memory OOM kill (limit {policy.memory_bytes / MIB:g} MiB)")
        if stats.pids_max_events:
            hit.append(f"cgroup pids limit ({policy.pids_max})")
        # Every task in the run's cgroup is the run's own uid, so a peak at RLIMIT_NPROC means
        # the uid had no process left to start: forks failed with EAGAIN from there on.
        if (
            stats.pids_peak is not None
            and uids.is_dedicated(self._uid)
            and stats.pids_peak >= policy.nproc
        ):
            hit.append(f"RLIMIT_NPROC {policy.nproc} processes")
        return hit

    def cleanup(self) -> None:
        """Kill what is left, remove the cgroup, and verify that nothing of the run remains.

        Raises SandboxCleanupError naming what outlived the run. Idempotent.
        """
        if self._cleaned:
            return
        if self.poll() is None:
            self.kill()
        self.wait()
        self.outcome()  # reads the cgroup's counters while it still exists
        left = self._leftover_processes()
        left_cgroups = self._cgroup.remove() if self._cgroup is not None else []
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        if self._lease is not None:
            # Even with processes left: the next lease skips a uid that still has some.
            self._lease.release()
        self._cleaned = True
        problems = []
        if left:
            problems.append(f"processes of uid {self._uid} still present: {sorted(left)}")
        if left_cgroups:
            problems.append(f"cgroups not removed: {', '.join(left_cgroups)}")
        if problems:
            raise SandboxCleanupError("; ".join(problems))

    def _leftover_processes(self) -> set[int]:
        deadline = time.monotonic() + LEFTOVER_TIMEOUT_S
        if self._cgroup is not None:
            while True:
                self._cgroup.kill()
                uids.reap_own_zombies(self._uid)
                left = self._cgroup.pids()
                if not left or time.monotonic() >= deadline:
                    break
                time.sleep(uids.POLL_INTERVAL_S)
            if left or not uids.is_dedicated(self._uid):
                return left
        if not uids.is_dedicated(self._uid):
            # A shared uid without a cgroup: the pid namespace died with bubblewrap's pid 1, and
            # nothing else would tell the run's processes from the caller's.
            return set()
        # The leased uid is the run's alone, so any process of it is a leftover; with a cgroup
        # this only reaps (and verifies), without one it kills as well.
        remaining_s = max(0.0, deadline - time.monotonic())
        kill = self._cgroup is None
        return set(uids.reap_until_gone(self._uid, remaining_s, kill=kill))


def start(
    policy: Policy,
    command: list[str],
    *,
    pass_fds: tuple[int, ...] = (),
    stdin: Stream = None,
    stdout: Stream = None,
    stderr: Stream = None,
    run_id: int | None = None,
    wrapper: tuple[str, ...] = (),
) -> SandboxProcess:
    """Start ``command`` (normally worker_command(policy)) in a sandbox under ``policy``.

    ``wrapper`` goes before the sandbox's own argv: the tracer (``strace -f ... -o FIFO``), which
    then runs outside the sandbox as the sandbox uid, under the same rlimits and cgroup, and
    follows bubblewrap into it. Its pid is the one ``kill()`` kills; bubblewrap dies with it.

    The sandbox runs as ``policy.sandbox_uid`` (a runner leases one for its whole run) or, when
    that is None, as a uid leased for this sandbox alone and released by cleanup().

    ``pass_fds`` keep their numbers inside. ``stdin=None`` means /dev/null (never the caller's
    terminal); ``stdout``/``stderr`` follow subprocess.Popen. Raises SandboxRefused with the
    reason when the host cannot sandbox and ``policy.unsandboxed`` is False, or when the set-up
    fails before the sandbox starts.
    """
    notes: list[str] = []
    if policy.unsandboxed:
        notes.append("UNSANDBOXED: rlimits only; no namespaces, no seccomp filter")
    else:
        report = cached_host_report()
        if not report.can_sandbox:
            raise SandboxRefused(report.reason)
        if not policy.python.startswith(VISIBLE_INTERPRETER_PREFIXES) or (
            policy.python.startswith(HIDDEN_INTERPRETER_PREFIXES)
        ):
            raise SandboxRefused(
                f"interpreter {policy.python} is not visible inside the sandbox "
                "(only /usr is, without /usr/local)"
            )

    lease = None
    if policy.sandbox_uid is None:
        try:
            lease = uids.lease_uid()
        except uids.UidUnavailable as exc:
            raise SandboxRefused(f"no sandbox uid: {exc}") from exc
    try:
        return _start(
            policy,
            command,
            notes,
            lease,
            pass_fds=pass_fds,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            run_id=run_id,
            wrapper=wrapper,
        )
    except BaseException:
        if lease is not None:
            lease.release()
        raise


def _start(
    policy: Policy,
    command: list[str],
    notes: list[str],
    lease: uids.UidLease | None,
    *,
    pass_fds: tuple[int, ...],
    stdin: Stream,
    stdout: Stream,
    stderr: Stream,
    run_id: int | None,
    wrapper: tuple[str, ...],
) -> SandboxProcess:
    uid = lease.uid if lease is not None else policy.sandbox_uid
    assert uid is not None
    if uids.caller_is_root() and uid == 0:
        raise SandboxRefused("refusing to run a sandbox as host root (uid 0)")
    if not uids.caller_is_root() and uid != os.geteuid():
        raise SandboxRefused(f"only a root caller can run the sandbox as another uid ({uid})")
    if uids.is_dedicated(uid):
        stale = uids.processes_of_uid(uid)
        if stale:
            raise SandboxRefused(
                f"sandbox uid {uid} still has processes {sorted(stale)} from an earlier run"
            )
        _check_readable_by_other(policy.code_dir, uid)

    cgroup = _create_cgroup(policy, uid, run_id, notes)
    workdir = _unsandboxed_workdir(uid) if policy.unsandboxed else None
    seccomp_fd = -1
    error_r, error_w = os.pipe()
    try:
        if policy.unsandboxed:
            argv = list(command)
            env = _unsandboxed_env(policy, workdir)
        else:
            seccomp_fd = program_fd()
            argv = bwrap_argv(policy, command, seccomp_fd=seccomp_fd)
            # bubblewrap clears the sandbox's environment; this is bubblewrap's own, kept
            # minimal so the caller's secrets are not even in the outer process's environ.
            env = {"PATH": SANDBOX_PATH, "LANG": "C.UTF-8"}
        argv = [*wrapper, *argv]
        switch_uid = uids.caller_is_root() and uid != os.geteuid()
        preexec = make_preexec(
            limits=resolved_rlimits(policy),
            cgroup_procs=cgroup.procs_files if cgroup is not None else [],
            uid=uid if switch_uid else None,
            gid=uid if switch_uid else None,
            error_fd=error_w,
        )
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=stdout,
                stderr=stderr,
                pass_fds=(*pass_fds, seccomp_fd) if seccomp_fd >= 0 else pass_fds,
                preexec_fn=preexec,
                start_new_session=True,
                env=env,
                cwd=workdir or "/",  # not the caller's cwd, which the sandbox uid may not reach
            )
        except (OSError, subprocess.SubprocessError) as exc:
            os.close(error_w)
            error_w = -1
            detail = os.read(error_r, ERROR_PIPE_READ_BYTES).decode(errors="replace")
            raise SandboxRefused(f"sandbox set-up failed: {detail or exc}") from exc
    except BaseException:
        if cgroup is not None:
            cgroup.remove()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        for fd in (seccomp_fd, error_r, error_w):
            if fd >= 0:
                os.close(fd)
    return SandboxProcess(
        popen, policy=policy, uid=uid, cgroup=cgroup, notes=notes, workdir=workdir, lease=lease
    )


def _check_readable_by_other(code_dir: Path, uid: int) -> None:
    # bubblewrap binds the code dir as the sandbox uid, which owns nothing on the host: only the
    # "other" permission bits let it in.
    code_dir = Path(code_dir).resolve()
    if not code_dir.is_dir():
        raise SandboxRefused(f"code dir {code_dir} does not exist; stage it with stage_code()")
    blocked = untraversable_ancestors(code_dir)
    if blocked or (code_dir.stat().st_mode & 0o005) != 0o005:
        raise SandboxRefused(
            f"code dir {code_dir} is not readable by sandbox uid {uid} "
            f"({', '.join(map(str, blocked)) or code_dir} not world-accessible); "
            "stage it with stage_code() under a world-traversable directory"
        )


def _create_cgroup(
    policy: Policy, uid: int, run_id: int | None, notes: list[str]
) -> RunCgroup | None:
    """The run's cgroup, or None (noted UNBOUNDED) where the host cannot make one and the
    policy allows that; otherwise SandboxRefused."""
    support = cached_cgroup_support()
    # Unique per start() even when one process retries the same run.
    label = run_id if run_id is not None else "adhoc"
    name = run_cgroup_name(label, uid, os.getpid(), next(_CGROUP_SERIAL))
    if not support.ok:
        why = support.detail
    else:
        try:
            return RunCgroup.create(
                support,
                name,
                memory_bytes=policy.memory_bytes,
                pids_max=policy.pids_max,
                cpus=policy.cpus,
            )
        except OSError as exc:
            why = f"creating {name} failed: {exc}"
    if not policy.allow_unbounded:
        raise SandboxRefused(f"{NO_BOUND}: {why}")
    notes.append(f"UNBOUNDED: {NO_BOUND}: {why}")
    return None


def _unsandboxed_workdir(uid: int) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="sysops-unsandboxed-"))
    if uids.caller_is_root():
        os.chown(workdir, uid, uid)
    return workdir


def _unsandboxed_env(policy: Policy, workdir: Path | None) -> dict[str, str]:
    return {
        "PYTHONPATH": str(policy.code_dir),
        "PATH": SANDBOX_PATH,
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
    }


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
