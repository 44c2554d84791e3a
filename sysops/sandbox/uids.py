"""The host uid a sandbox runs as, and finding or killing what runs under it.

A root caller never runs bubblewrap as root: the child drops to a dedicated unprivileged uid.
One uid per run (``100000 + run_id % 50000``) means concurrent runs do not share an
RLIMIT_NPROC budget, and that "every process of this uid" is exactly "this run", which is what
makes the uid-wide kill and the leftover check sound.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path

# Overridable so that two checkouts testing on one host use disjoint uids (see issue on leases).
SANDBOX_UID_BASE = int(os.environ.get("SYSOPS_SANDBOX_UID_BASE", "100000"))
SANDBOX_UID_COUNT = 50_000
PROC = Path("/proc")
POLL_INTERVAL_S = 0.02


def caller_is_root() -> bool:
    return os.geteuid() == 0


def choose_uid(requested: int | None, run_id: int | None) -> int:
    """The host uid for a run: the requested one, a dedicated one when root, else our own."""
    if requested is not None:
        return requested
    if not caller_is_root():
        return os.geteuid()  # an unprivileged caller cannot switch uid: run as itself
    if run_id is not None:
        return SANDBOX_UID_BASE + run_id % SANDBOX_UID_COUNT
    for _ in range(100):
        uid = SANDBOX_UID_BASE + random.randrange(SANDBOX_UID_COUNT)
        if not processes_of_uid(uid):
            return uid
    raise RuntimeError("no free sandbox uid found")


def is_dedicated(uid: int) -> bool:
    """True if nothing but the sandbox runs as ``uid`` (so it may be killed wholesale)."""
    return uid != os.geteuid() and uid != 0


def processes_of_uid(uid: int) -> dict[int, str]:
    """pid -> state letter for every process whose real uid is ``uid`` (zombies included)."""
    found: dict[int, str] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue  # exited while we looked
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == uid:
            found[int(entry.name)] = fields["State"].split()[0]
    return found


def kill_uid(uid: int) -> None:
    """SIGKILL every live process of a dedicated uid, once. Callers loop until none is left,
    since a process may fork between the scan and the kill."""
    assert is_dedicated(uid), "refusing to kill every process of a shared uid"
    for pid, state in processes_of_uid(uid).items():
        if state != "Z":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def reap_own_zombies(uid: int) -> None:
    """Reap zombies of ``uid`` that are our children (orphans we inherited as subreaper).

    Only these pids are waited for, never ``-1``: the caller may have other children whose exit
    status belongs to someone else (the tracer, say).
    """
    me = os.getpid()
    for pid, state in processes_of_uid(uid).items():
        if state == "Z" and _ppid(pid) == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _ppid(pid: int) -> int | None:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reap_until_gone(uid: int, timeout_s: float, *, kill: bool = False) -> dict[int, str]:
    """Reap (and with ``kill``, first SIGKILL) the processes of a dedicated uid until none is
    left or ``timeout_s`` passes; returns what is left.

    bubblewrap exits as soon as it has its command's status, so the sandbox's pid 1 outlives it
    for a moment and is inherited by the nearest subreaper: often us.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if kill:
            kill_uid(uid)
        reap_own_zombies(uid)
        left = processes_of_uid(uid)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(POLL_INTERVAL_S)
