"""The host uid a sandbox runs as: leased from a configured range, and finding what runs under it.

A root caller never runs bubblewrap as root: the child drops to a dedicated unprivileged uid.
Each run leases its own uid for its whole life: an exclusive ``flock`` on a lock file per uid in
a host-wide directory (LEASE_DIR), so two agents, two installs or two checkouts on one host never
hold the same uid, whatever their run ids. The lock dies with the process that holds it, so a
runner killed mid-run frees its uid; a uid that still has processes is skipped until they are
gone. One uid per run keeps RLIMIT_NPROC budgets apart; killing goes through the run's cgroup
(process.py), and the uid only serves to verify that nothing of the run is left.

The range comes from ``SYSOPS_SANDBOX_UIDS`` (``START:COUNT``, as in /etc/subuid) and must not
overlap /etc/subuid, /etc/subgid or /etc/passwd: rootless containers map those ranges, and a
sandbox sharing one of their uids could signal their processes or read their files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

# 0x70000000: above the ranges /etc/subuid hands out (100000 + 65536 n) and systemd-nspawn's
# container ranges (up to 0x6FFFFFFF), below the 2^31 boundary some tools mishandle.
DEFAULT_UID_START = 0x7000_0000
DEFAULT_UID_COUNT = 65_536
LEGACY_UID_COUNT = 50_000
LEASE_DIR = Path("/run/sysops/uids")
ID_MAP_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))
PASSWD_PATH = Path("/etc/passwd")
PROC = Path("/proc")
POLL_INTERVAL_S = 0.02


class UidUnavailable(Exception):
    """No uid can be leased: the range is misconfigured, overlaps a mapped range, or is full."""


def caller_is_root() -> bool:
    return os.geteuid() == 0


def configured_range(environ: dict[str, str] | None = None) -> range:
    """The uids sandboxes may use: ``SYSOPS_SANDBOX_UIDS=START:COUNT``, or the older
    ``SYSOPS_SANDBOX_UID_BASE`` (START, 50,000 uids), or the default."""
    env = os.environ if environ is None else environ
    spec = env.get("SYSOPS_SANDBOX_UIDS", "").strip()
    if spec:
        try:
            start_text, count_text = spec.split(":")
            start, count = int(start_text), int(count_text)
        except ValueError:
            raise UidUnavailable(
                f"SYSOPS_SANDBOX_UIDS={spec!r} is not START:COUNT (e.g. 1879048192:65536)"
            ) from None
    elif env.get("SYSOPS_SANDBOX_UID_BASE"):
        start, count = int(env["SYSOPS_SANDBOX_UID_BASE"]), LEGACY_UID_COUNT
    else:
        start, count = DEFAULT_UID_START, DEFAULT_UID_COUNT
    if start < 1000 or count < 1 or start + count > 2**32 - 1:
        raise UidUnavailable(f"sandbox uid range {start}:{count} is not usable")
    return range(start, start + count)


def range_conflicts(uids: range) -> list[str]:
    """Where ``uids`` overlaps ranges the host already gives out (subordinate ids, users)."""
    found = []
    for path in ID_MAP_FILES:
        for line in _lines(path):
            parts = line.split(":")
            if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
                continue
            start, count = int(parts[1]), int(parts[2])
            if start < uids.stop and uids.start < start + count:
                found.append(f"{path} gives {parts[0]} {start}:{count}")
    for line in _lines(PASSWD_PATH):
        parts = line.split(":")
        if len(parts) > 2 and parts[2].isdigit() and int(parts[2]) in uids:
            found.append(f"{PASSWD_PATH} has user {parts[0]} as uid {parts[2]}")
    return found


def _lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line and line[0] != "#"]
    except OSError:
        return []


@dataclass
class UidLease:
    """One uid held for a run: released by release() or when the holding process dies."""

    uid: int
    _fd: int | None = field(default=None, repr=False)

    @property
    def dedicated(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> UidLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lease_uid(*, uids: range | None = None, lock_dir: Path | None = None) -> UidLease:
    """Lease a free uid of the configured range; UidUnavailable says why none could be.

    An unprivileged caller cannot switch uid: it gets a lease on its own uid, which is not
    dedicated (is_dedicated() is False for it) and locks nothing.
    """
    if not caller_is_root():
        return UidLease(os.geteuid())
    uids = configured_range() if uids is None else uids
    conflicts = range_conflicts(uids)
    if conflicts:
        raise UidUnavailable(
            f"sandbox uid range {uids.start}:{len(uids)} overlaps {'; '.join(conflicts)} "
            "(set SYSOPS_SANDBOX_UIDS=START:COUNT to a free range)"
        )
    lock_dir = LEASE_DIR if lock_dir is None else lock_dir
    lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # From a random place in the range: a uid just released is not handed out again at once,
    # so anyone still looking for the last run's processes by its uid finds none of the next's.
    offset = random.randrange(len(uids))
    for uid in (*uids[offset:], *uids[:offset]):
        fd = os.open(lock_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # another run, here or in another install, holds it
        if processes_of_uid(uid):
            os.close(fd)  # a run whose runner died left processes; they still own the uid
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for a human looking at who holds what
        return UidLease(uid, fd)
    raise UidUnavailable(f"every uid of {uids.start}:{len(uids)} is leased or still in use")


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
