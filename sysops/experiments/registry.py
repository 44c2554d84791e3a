"""The catalog: every experiment the web side knows, by slug."""

from __future__ import annotations

from django.conf import settings

from sysops.experiments.base import Experiment
from sysops.experiments.epoll_echo.spec import EXPERIMENT as EPOLL_ECHO
from sysops.experiments.errno_boundary.spec import EXPERIMENT as ERRNO_BOUNDARY
from sysops.experiments.mmap.spec import EXPERIMENT as MMAP
from sysops.experiments.raw_icmp.spec import EXPERIMENT as RAW_ICMP
from sysops.experiments.seccomp_cost.spec import EXPERIMENT as SECCOMP_COST
from sysops.experiments.syscall_cost.spec import EXPERIMENT as SYSCALL_COST


def _all() -> dict[str, Experiment]:
    experiments = [SYSCALL_COST, EPOLL_ECHO, SECCOMP_COST, RAW_ICMP, MMAP, ERRNO_BOUNDARY]
    if settings.SYSOPS_TEST_EXPERIMENTS:
        from sysops.experiments.hostile.spec import EXPERIMENT as HOSTILE
        from sysops.experiments.synthetic.spec import EXPERIMENT as SYNTHETIC
        from sysops.experiments.workload.spec import EXPERIMENT as WORKLOAD

        experiments += [HOSTILE, SYNTHETIC, WORKLOAD]
    return {e.slug: e for e in experiments}


def get(slug: str) -> Experiment | None:
    return _all().get(slug)


def catalog() -> list[Experiment]:
    return [e for e in _all().values() if not e.hidden]
