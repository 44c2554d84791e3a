"""Per-run cgroups (memory and pids limits) where the host allows them: cgroup v2, or the v1
memory and pids controllers of a hybrid host.

Each run's cgroup is created *inside the caller's own cgroup* of each hierarchy, so the sandbox
stays within whatever the host already imposes on the caller and cannot escape it. The child
moves itself into the cgroup before it drops to the sandbox uid (see preexec.py), so bubblewrap
and everything it starts are inside from their first instruction.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO_PATH = Path("/proc/self/mountinfo")
SELF_CGROUP_PATH = Path("/proc/self/cgroup")
# A run is bounded only with all three: RLIMIT_AS does not bound memfds, page cache or socket
# buffers, RLIMIT_NPROC counts per uid, and RLIMIT_CPU lets one run take every core until it
# runs out.
CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
# v1 only: CPU time is accounted by its own controller there (v2 has cpu.stat in every cgroup).
V1_ACCOUNTING = ("cpuacct",)
REMOVE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class CgroupSupport:
    """Where per-run cgroups go: the caller's own cgroup directory per controller."""

    version: int | None  # 2, 1 or None when no usable controller was found
    parents: dict[str, Path]  # controller -> caller's cgroup dir in that hierarchy
    detail: str

    @property
    def ok(self) -> bool:
        return all(c in self.parents for c in CONTROLLERS)


@dataclass(frozen=True)
class CgroupStats:
    oom_kills: int = 0
    pids_max_events: int = 0
    pids_peak: int | None = None
    memory_peak_bytes: int | None = None
    cpu_s: float | None = None  # user + system time of every process that was in the cgroup


def detect() -> CgroupSupport:
    """Find the memory, pids and cpu controllers this process could nest a cgroup under."""
    try:
        mounts = _cgroup_mounts()
        own = _own_cgroups()
    except OSError as exc:
        return CgroupSupport(None, {}, f"cannot read cgroup mounts: {exc}")

    if "" in mounts and "" in own:
        parent = _host_path(mounts[""], own[""])
        try:
            available = (parent / "cgroup.controllers").read_text().split()
        except OSError as exc:
            available = []
            v2_detail = f"cgroup v2 at {parent}: {exc}"
        else:
            v2_detail = f"cgroup v2 at {parent} offers {' '.join(available) or 'no controllers'}"
        if all(c in available for c in CONTROLLERS):
            return CgroupSupport(2, {c: parent for c in CONTROLLERS}, v2_detail)
    else:
        v2_detail = "no cgroup v2 hierarchy"

    wanted = (*CONTROLLERS, *V1_ACCOUNTING)
    parents = {c: _host_path(mounts[c], own[c]) for c in wanted if c in mounts and c in own}
    if not any(c in parents for c in CONTROLLERS):
        return CgroupSupport(None, {}, f"{v2_detail}; no cgroup v1 memory, pids or cpu controller")
    missing = [c for c in CONTROLLERS if c not in parents]
    detail = "cgroup v1 " + ", ".join(f"{c} at {p}" for c, p in parents.items())
    if missing:
        detail += f"; no {' or '.join(missing)} controller"
    detail += f" ({v2_detail})"
    return CgroupSupport(1, parents, detail)


class RunCgroup:
    """One run's cgroup(s): created with limits, joined by the child, read, then removed."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs  # controller -> directory (the same directory twice on v2)

    @classmethod
    def create(
        cls, support: CgroupSupport, name: str, *, memory_bytes: int, pids_max: int, cpus: float
    ) -> RunCgroup:
        """Create ``name`` under each parent and set the limits (``cpus``: CPU time per wall
        second, 1.0 = one core); OSError if the host refuses."""
        assert support.version is not None
        if support.version == 2:
            parent = support.parents["memory"]
            _enable_v2_controllers(parent)
            dirs = {c: parent / name for c in CONTROLLERS}
        else:
            dirs = {c: p / name for c, p in support.parents.items()}
        cgroup = cls(support.version, dirs)
        try:
            for path in set(dirs.values()):
                path.mkdir()
            cgroup._set_limits(memory_bytes, pids_max, cpus)
        except OSError:
            cgroup.remove()
            raise
        return cgroup

    def _set_limits(self, memory_bytes: int, pids_max: int, cpus: float) -> None:
        memory, pids, cpu = self.dirs.get("memory"), self.dirs.get("pids"), self.dirs.get("cpu")
        quota_us = max(1000, round(cpus * CPU_PERIOD_US))  # the kernel's minimum is 1 ms
        if self.version == 2:
            _write(memory / "memory.max", memory_bytes)
            # Swap would let the sandbox exceed memory.max without an OOM kill.
            if (memory / "memory.swap.max").exists():
                _write(memory / "memory.swap.max", 0)
            _write(pids / "pids.max", pids_max)
            _write(cpu / "cpu.max", f"{quota_us} {CPU_PERIOD_US}")
            return
        if cpu is not None:
            _write(cpu / "cpu.cfs_period_us", CPU_PERIOD_US)
            _write(cpu / "cpu.cfs_quota_us", quota_us)
        if memory is not None:
            _write(memory / "memory.limit_in_bytes", memory_bytes)
            # memory+swap: same figure, so swap cannot extend the limit (must follow the above).
            if (memory / "memory.memsw.limit_in_bytes").exists():
                _write(memory / "memory.memsw.limit_in_bytes", memory_bytes)
        if pids is not None:
            _write(pids / "pids.max", pids_max)

    @property
    def procs_files(self) -> list[Path]:
        """The files the child writes its pid into to join every controller."""
        return [path / "cgroup.procs" for path in sorted(set(self.dirs.values()))]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.procs_files:
            with contextlib.suppress(FileNotFoundError):
                found.update(int(line) for line in path.read_text().split())
        return found

    def stats(self) -> CgroupStats:
        memory, pids = self.dirs.get("memory"), self.dirs.get("pids")
        oom_kills = pids_max_events = 0
        pids_peak = memory_peak = None
        cpu_s = None
        if memory is not None:
            events = "memory.events" if self.version == 2 else "memory.oom_control"
            oom_kills = _keyed(memory / events).get("oom_kill", 0)
            peak = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
            memory_peak = _read_int(memory / peak)
        if pids is not None:
            pids_max_events = _keyed(pids / "pids.events").get("max", 0)
            pids_peak = _read_int(pids / "pids.peak")
        if self.version == 2:
            usage_us = _keyed(memory / "cpu.stat").get("usage_usec")
            cpu_s = usage_us / 1e6 if usage_us is not None else None
        elif "cpuacct" in self.dirs:
            usage_ns = _read_int(self.dirs["cpuacct"] / "cpuacct.usage")
            cpu_s = usage_ns / 1e9 if usage_ns is not None else None
        return CgroupStats(oom_kills, pids_max_events, pids_peak, memory_peak, cpu_s)

    def kill_each(self) -> None:
        """SIGKILL every process listed in the cgroup, one by one (v1 has no cgroup.kill)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL everything in the cgroup (the backstop when the sandbox uid is not dedicated)."""
        kill_file = self.dirs.get("pids", self.dirs.get("memory")) / "cgroup.kill"
        if self.version == 2 and kill_file.exists():
            with contextlib.suppress(FileNotFoundError):
                _write(kill_file, 1)
            return
        self.kill_each()

    def remove(self) -> list[str]:
        """rmdir every directory; returns the ones still present after REMOVE_TIMEOUT_S."""
        deadline = time.monotonic() + REMOVE_TIMEOUT_S
        left = sorted(set(self.dirs.values()))
        while left:
            still = []
            for path in left:
                try:
                    path.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    still.append(path)  # EBUSY while exiting tasks are being released
            left = still
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        return [str(path) for path in left]


# The one definition of a run cgroup's name: sysops-<run id or "adhoc">-<uid>-<creator pid>-<n>.
# The creator's pid lets recovery find the cgroups of a runner that died before its cleanup.
RUN_CGROUP_PREFIX = "sysops-"


def run_cgroup_name(label: int | str, uid: int, creator_pid: int, serial: int) -> str:
    return f"{RUN_CGROUP_PREFIX}{label}-{uid}-{creator_pid}-{serial}"


def run_cgroup_glob(
    label: int | str = "*", uid: int | str = "*", creator_pid: int | str = "*"
) -> str:
    """A glob over run cgroup names, narrowed by whatever is given."""
    return run_cgroup_name(label, uid, creator_pid, "*")  # type: ignore[arg-type]


def creator_of(name: str) -> int | None:
    parts = name.removeprefix(RUN_CGROUP_PREFIX).split("-")
    return int(parts[-2]) if len(parts) == 4 and parts[-2].isdigit() else None


def sweep_orphans(support: CgroupSupport) -> list[str]:
    """Kill and remove run cgroups whose creating process is gone (a runner SIGKILLed before its
    cleanup); returns what it removed."""
    orphans: dict[str, dict[str, Path]] = {}
    for controller, parent in support.parents.items():
        for path in parent.glob(run_cgroup_glob()):
            creator = creator_of(path.name)
            if creator is not None and not Path(f"/proc/{creator}").exists():
                orphans.setdefault(path.name, {})[controller] = path
    removed = []
    for dirs in orphans.values():
        orphan = RunCgroup(support.version or 1, dirs)
        orphan.kill_each()
        left = orphan.remove()
        removed += [str(path) for path in set(dirs.values()) if str(path) not in left]
    return removed


def _cgroup_mounts() -> dict[str, tuple[str, Path]]:
    """Controller ("" for v2) -> (mount root within the hierarchy, mount point)."""
    mounts: dict[str, tuple[str, Path]] = {}
    for line in MOUNTINFO_PATH.read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        root, mount_point = fields[3], Path(fields[4].replace("\\040", " "))
        if fstype == "cgroup2":
            mounts.setdefault("", (root, mount_point))
        elif fstype == "cgroup":
            for controller in (*CONTROLLERS, *V1_ACCOUNTING):
                if controller in options:
                    mounts.setdefault(controller, (root, mount_point))
    return mounts


def _own_cgroups() -> dict[str, str]:
    """Controller ("" for v2) -> this process's cgroup path within that hierarchy."""
    own: dict[str, str] = {}
    for line in SELF_CGROUP_PATH.read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            own[""] = path
        for controller in controllers.split(","):
            if controller in (*CONTROLLERS, *V1_ACCOUNTING):
                own[controller] = path
    return own


def _host_path(mount: tuple[str, Path], own_path: str) -> Path:
    # A container may mount only a subtree of the hierarchy (mount root != "/").
    root, mount_point = mount
    relative = os.path.relpath(own_path, root) if root != "/" else own_path.lstrip("/")
    return mount_point if relative in ("", ".") else mount_point / relative


def _enable_v2_controllers(parent: Path) -> None:
    # Fails with EBUSY when the parent holds processes itself (the "no internal processes" rule
    # of cgroup v2, for any non-root cgroup): the host then needs a delegated subtree for us.
    enabled = (parent / "cgroup.subtree_control").read_text().split()
    wanted = [c for c in CONTROLLERS if c not in enabled]
    if wanted:
        _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))


def _write(path: Path, value: object) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _keyed(path: Path) -> dict[str, int]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split() for line in lines)
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].lstrip("-").isdigit()}


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
