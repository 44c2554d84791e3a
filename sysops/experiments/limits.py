"""The operator's ceilings on the sandbox limits an experiment may ask for.

An experiment raises its own limits through ``Experiment.limits(params)`` (names of
``sysops.sandbox.Policy`` fields): process-spawn needs room for a 1 GiB parent, descriptors a
larger RLIMIT_NOFILE. The operator bounds those requests in settings
(``SYSOPS_LIMITS_MAX_*``, see README); the runner clamps every request to them with
``bounded``, and forms check against ``ceiling`` so that a request over it is a field error
rather than a silently smaller run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

# Policy field -> the setting that caps it. RLIMIT_NPROC and the cgroup's pids.max bound the
# same thing from two sides; a tmpfs is memory; CPU seconds cannot usefully exceed wall seconds.
CEILING_SETTINGS = {
    "memory_bytes": "SYSOPS_LIMITS_MAX_MEMORY_BYTES",
    "tmpfs_bytes": "SYSOPS_LIMITS_MAX_MEMORY_BYTES",
    "address_space_bytes": "SYSOPS_LIMITS_MAX_ADDRESS_SPACE_BYTES",
    "nofile": "SYSOPS_LIMITS_MAX_NOFILE",
    "nproc": "SYSOPS_LIMITS_MAX_NPROC",
    "pids_max": "SYSOPS_LIMITS_MAX_NPROC",
    "file_size_bytes": "SYSOPS_LIMITS_MAX_FILE_SIZE_BYTES",
    "wall_s": "SYSOPS_LIMITS_MAX_WALL_S",
    "cpu_s": "SYSOPS_LIMITS_MAX_WALL_S",
}


def ceiling(field: str) -> int | float:
    """The operator's ceiling for the Policy field ``field``."""
    return getattr(settings, CEILING_SETTINGS[field])


def bounded(requested: Mapping[str, Any]) -> dict[str, Any]:
    """``requested`` with each value clamped to its ceiling. A field without a ceiling (the
    code directory, the interpreter, CAP_NET_RAW, the sandbox uid…) is not the experiment's to
    set: asking for one is a programming error, raised as such."""
    unknown = sorted(set(requested) - set(CEILING_SETTINGS))
    if unknown:
        raise ValueError(f"an experiment may not set these sandbox limits: {', '.join(unknown)}")
    # Keeps each value's own type: an rlimit must stay an int under a float ceiling.
    return {field: type(value)(min(value, ceiling(field))) for field, value in requested.items()}
