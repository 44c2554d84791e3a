"""The sandbox a worker runs in: bubblewrap, rlimits, a dedicated uid, cgroups and seccomp.

Sandbox-side support code: imports nothing from Django. The runner calls, in order:
``set_child_subreaper()`` once, ``cached_host_report()`` (probed once per process),
``stage_code(dir)``, ``start(policy, worker_command(policy), ...)``, then ``wait`` /
``wait_until_deadline``, ``outcome()`` and always ``cleanup()``.
"""

from sysops.sandbox.bwrap import bwrap_argv
from sysops.sandbox.cgroups import sweep_orphans
from sysops.sandbox.host import (
    Check,
    HostReport,
    cached_cgroup_support,
    cached_host_report,
    probe_host,
)
from sysops.sandbox.policy import Policy, worker_command
from sysops.sandbox.preexec import set_child_subreaper
from sysops.sandbox.process import (
    Outcome,
    SandboxCleanupError,
    SandboxProcess,
    SandboxRefused,
    start,
)
from sysops.sandbox.seccomp import seccomp_program
from sysops.sandbox.stage import stage_code


def sweep_orphaned_cgroups() -> list[str]:
    """Remove the cgroups of runs whose runner died before cleaning up (see cgroups.py)."""
    support = cached_cgroup_support()
    return sweep_orphans(support) if support.ok else []


__all__ = [
    "Check",
    "HostReport",
    "Outcome",
    "Policy",
    "SandboxCleanupError",
    "SandboxProcess",
    "SandboxRefused",
    "bwrap_argv",
    "cached_host_report",
    "probe_host",
    "seccomp_program",
    "set_child_subreaper",
    "stage_code",
    "sweep_orphaned_cgroups",
    "start",
    "worker_command",
]
