"""What one sandboxed run may do: the limits, as a value the rest of the sandbox turns into argv,
rlimits and cgroup settings. Imports nothing from Django."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

# Where the staged code appears inside the sandbox; PYTHONPATH points here.
CODE_MOUNT = "/opt/sysops"
# Where a run's scratch directory on a real disk (Policy.scratch_dir) appears, read-write.
SCRATCH_MOUNT = "/scratch"

# `-I` (isolated) would be the obvious choice, but it implies -E, which ignores PYTHONPATH, so
# the worker package could not be found. Instead:
#   -S  no site module: neither user site-packages (HOME is the sandbox's own /tmp) nor the
#       system's dist-packages; sandbox-side code uses the standard library only;
#   -P  do not prepend the current directory (/tmp, writable inside) to sys.path;
#   -B  do not try to write .pyc files (the code dir is read-only anyway).
# -E is unnecessary because bubblewrap clears the environment (--clearenv) and sets only the
# variables bwrap_argv() lists, PYTHONPATH among them.
INTERPRETER_FLAGS = ("-S", "-P", "-B")
WORKER_MODULE = "sysops.worker"


@dataclass(frozen=True)
class Policy:
    code_dir: Path  # host dir (staged by stage_code) bound read-only at CODE_MOUNT
    python: str = "/usr/bin/python3"  # interpreter inside the sandbox: only /usr is visible there
    wall_s: float = 60.0  # enforced by SandboxProcess.wait_until_deadline() or by the caller
    cpu_s: int = 30  # RLIMIT_CPU soft limit (SIGXCPU); the hard limit is one second later
    address_space_bytes: int = 1 << 30  # RLIMIT_AS
    nproc: int = 64  # RLIMIT_NPROC; counts per host uid, hence the dedicated sandbox uid
    file_size_bytes: int = 64 << 20  # RLIMIT_FSIZE
    nofile: int = 1024  # RLIMIT_NOFILE
    tmpfs_bytes: int = 64 << 20  # size of each private tmpfs (/tmp, the cwd, and /dev/shm)
    memory_bytes: int = 512 << 20  # cgroup memory limit
    pids_max: int = 128  # cgroup pids limit
    cpus: float = 1.0  # cgroup CPU bandwidth: CPU seconds per wall second (1.0 = one core)
    net_raw: bool = True  # keep CAP_NET_RAW inside (raw ICMP on the sandbox's own loopback)
    unsandboxed: bool = False  # development switch: rlimits only, no bwrap; results UNSANDBOXED
    # Development switch: run even where the run's memory, pids and cpu cgroup cannot be made
    # (rlimits only, which do not bound memfds, page cache or the cores used); results UNBOUNDED.
    allow_unbounded: bool = False
    sandbox_uid: int | None = None  # host uid to run as (leased); None: start() leases one
    # A host directory on a disk filesystem bound read-write at SCRATCH_MOUNT (experiments about
    # disks: the sandbox's own /tmp is a tmpfs); made, capped and removed by the runner.
    scratch_dir: Path | None = None


def worker_command(policy: Policy) -> list[str]:
    """The command that runs the worker inside the sandbox (see INTERPRETER_FLAGS for why)."""
    return [policy.python, *INTERPRETER_FLAGS, "-m", WORKER_MODULE]


def rlimits(policy: Policy) -> dict[str, tuple[int, int]]:
    """RLIMIT name -> (soft, hard), applied in the child before it becomes bubblewrap."""
    return {
        "RLIMIT_AS": (policy.address_space_bytes, policy.address_space_bytes),
        "RLIMIT_NPROC": (policy.nproc, policy.nproc),
        # The soft limit delivers SIGXCPU (reported as "RLIMIT_CPU"); the hard limit one second
        # later is SIGKILL, for a process that catches or ignores SIGXCPU.
        "RLIMIT_CPU": (policy.cpu_s, policy.cpu_s + 1),
        "RLIMIT_FSIZE": (policy.file_size_bytes, policy.file_size_bytes),
        "RLIMIT_NOFILE": (policy.nofile, policy.nofile),
        "RLIMIT_CORE": (0, 0),
    }


def resolved_rlimits(policy: Policy) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) ready for setrlimit, never above the caller's own hard limits
    unless the caller may raise them (root): an unprivileged caller cannot, and asking would
    make the child fail before exec."""
    may_raise = os.geteuid() == 0
    limits = []
    for name, (soft, hard) in rlimits(policy).items():
        res = getattr(resource, name)
        _, current_hard = resource.getrlimit(res)
        if not may_raise and current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
            soft = min(soft, hard)
        limits.append((res, soft, hard))
    return limits
