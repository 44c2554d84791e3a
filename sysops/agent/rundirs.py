"""A runner's work directory (staged code, trace FIFO, scratch mounts), and the sweep that removes
the ones whose runner died without removing them (SIGKILL runs no ``finally``).

The name carries the runner's pid, as run cgroups do, so the agent can tell a live run's
directory from a dead one's without any shared state; a directory whose pid is alive, or that
still has a filesystem mounted inside it, is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = "sysops-run-"
STALE_NAME = re.compile(rf"^{PREFIX}\d+-pid(\d+)-")
MOUNTINFO_PATH = Path("/proc/self/mountinfo")


def make(parent: Path, run_id: int) -> Path:
    """A fresh work directory for ``run_id`` owned by this process, readable by the sandbox uid
    (the staged code inside must be)."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{run_id}-pid{os.getpid()}-", dir=parent))
    os.chmod(path, 0o755)
    return path


def sweep_stale(parent: Path) -> list[str]:
    """Remove work directories under ``parent`` whose runner is gone; returns what it removed."""
    removed = []
    mounted = _mount_points()
    for path in sorted(parent.glob(f"{PREFIX}*")):
        match = STALE_NAME.match(path.name)
        if match is None or not path.is_dir() or Path(f"/proc/{match[1]}").exists():
            continue
        inside = f"{path}/"
        if any(point.startswith(inside) for point in mounted):
            continue  # its scratch filesystem goes first (the agent's scratch sweep)
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(str(path))
    return removed


def _mount_points() -> list[str]:
    try:
        lines = MOUNTINFO_PATH.read_text().splitlines()
    except OSError:
        return []
    return [line.split()[4].replace("\\040", " ") for line in lines if len(line.split()) > 4]
