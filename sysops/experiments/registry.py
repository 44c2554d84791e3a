"""The catalog: every experiment the web side knows, by slug."""

from __future__ import annotations

from django.conf import settings

from sysops.experiments.base import Experiment
from sysops.experiments.descriptors.spec import EXPERIMENT as DESCRIPTORS
from sysops.experiments.epoll_echo.spec import EXPERIMENT as EPOLL_ECHO
from sysops.experiments.errno_boundary.spec import EXPERIMENT as ERRNO_BOUNDARY
from sysops.experiments.file_io.spec import EXPERIMENT as FILE_IO
from sysops.experiments.go_scheduler.spec import EXPERIMENT as GO_SCHEDULER
from sysops.experiments.io_multiplexing.spec import EXPERIMENT as IO_MULTIPLEXING
from sysops.experiments.mmap.spec import EXPERIMENT as MMAP
from sysops.experiments.process_spawn.spec import EXPERIMENT as PROCESS_SPAWN
from sysops.experiments.raw_icmp.spec import EXPERIMENT as RAW_ICMP
from sysops.experiments.seccomp_cost.spec import EXPERIMENT as SECCOMP_COST
from sysops.experiments.socket_options.spec import EXPERIMENT as SOCKET_OPTIONS
from sysops.experiments.syscall_cost.spec import EXPERIMENT as SYSCALL_COST
from sysops.experiments.tcp.spec import EXPERIMENT as TCP
from sysops.experiments.wasm_boundary.spec import EXPERIMENT as WASM_BOUNDARY


def _all() -> dict[str, Experiment]:
    # In the order of a systems-programming guide: the boundary, memory, files, processes,
    # descriptors, the network, multiplexing, then the newer boundaries.
    experiments = [
        SYSCALL_COST,
        ERRNO_BOUNDARY,
        MMAP,
        FILE_IO,
        PROCESS_SPAWN,
        DESCRIPTORS,
        TCP,
        SOCKET_OPTIONS,
        RAW_ICMP,
        IO_MULTIPLEXING,
        EPOLL_ECHO,
        SECCOMP_COST,
        GO_SCHEDULER,
        WASM_BOUNDARY,
    ]
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
