"""Facts about the host that a figure depends on: the filesystem under a path (its type by
statfs, its device from mountinfo), transparent huge pages, sysctls, rlimits, the page size,
and the process's huge-page use. Every read is best-effort: None when a file is missing or
unreadable (inside the sandbox much of /sys and /proc/sys may be absent), never an exception.
Looking a fact up is the harness's work, not the experiment's: its calls are bracketed as such
in a trace (``sysops.worker.markers.harness``) and hidden from the page by default.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import resource
from pathlib import Path
from typing import Any

from sysops.worker.markers import harness_call
from sysops.worker.toolkit.libc import libc

MOUNTINFO_PATH = Path("/proc/self/mountinfo")
THP_DIR = Path("/sys/kernel/mm/transparent_hugepage")
SMAPS_ROLLUP_PATH = Path("/proc/self/smaps_rollup")
SMAPS_PATH = Path("/proc/self/smaps")
THP_PROBE_BYTES = 4 << 20  # room for a whole aligned 2 MiB huge page whatever the alignment
SYSCTL_DIR = Path("/proc/sys")
SYS_BLOCK_DIR = Path("/sys/dev/block")
STATFS_BUFFER_BYTES = 256  # struct statfs is 120 bytes on 64-bit Linux; f_type comes first
STATX_BUFFER_BYTES = 256  # struct statx (<linux/stat.h>)
STATX_DIOALIGN = 0x2000
# Byte offsets of stx_dio_mem_align and stx_dio_offset_align in struct statx (stx_mask is at 0).
STATX_DIO_ALIGN_OFFSETS = (152, 156)
AT_FDCWD = -100

# statfs f_type magic numbers (<linux/magic.h>) of the filesystems people meet.
FS_MAGIC = {
    0xEF53: "ext4",  # ext2/3/4 share it; mountinfo names which
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0xF2F52010: "f2fs",
    0x2FC12FC1: "zfs",
    0x01021994: "tmpfs",
    0x858458F6: "ramfs",
    0x794C7630: "overlayfs",
    0x6969: "nfs",
    0x65735546: "fuse",
    0x01021997: "9p",
    0x9FA0: "proc",
    0x62656572: "sysfs",
}
# On these, fsync is a no-op and O_DIRECT (where accepted) copies memory: a disk figure taken
# there measures RAM, and the page must say so.
NOT_A_DISK = frozenset({"tmpfs", "ramfs", "overlayfs", "proc", "sysfs"})
# The runner's note at the root of a run's scratch directory: what is behind its loop device,
# which the sandbox cannot see (no /sys/block inside). See sysops/agent/scratch.py.
SCRATCH_FACTS_NAME = ".sysops-scratch.json"
RLIMITS = ("RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_CPU")


@harness_call
def filesystem(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{type, magic, is_disk, device, mount_point, fs_options, block_size}`` of the
    filesystem holding ``path``. ``type`` comes from statfs (the kernel's word, not a mount
    table's); ``device`` and ``mount_point`` from the longest matching mountinfo entry."""
    magic = _statfs_type(path)
    mount = _mount_of(os.path.realpath(path))
    fs_type = FS_MAGIC.get(magic) if magic is not None else None
    if fs_type == "ext4" and mount and mount["fstype"] in ("ext2", "ext3"):
        fs_type = mount["fstype"]
    fs_type = fs_type or (mount or {}).get("fstype")
    try:
        block_size = os.statvfs(path).f_bsize
    except OSError:
        block_size = None
    return {
        "type": fs_type,
        "magic": None if magic is None else hex(magic),
        "is_disk": fs_type is not None and fs_type not in NOT_A_DISK,
        "device": (mount or {}).get("source"),
        "mount_point": (mount or {}).get("mount_point"),
        "block_size": block_size,
        "logical_block_size": logical_block_size(path),
    }


def _statfs_type(path: str | os.PathLike[str]) -> int | None:
    buffer = ctypes.create_string_buffer(STATFS_BUFFER_BYTES)
    if libc.statfs(os.fsencode(path), buffer) != 0:
        return None
    return ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF


def _mount_of(path: str) -> dict[str, str] | None:
    best: dict[str, str] | None = None
    for line in _read_text(MOUNTINFO_PATH, "").splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        mount_point = fields[4].replace("\\040", " ")
        inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= len(best["mount_point"])):
            best = {
                "mount_point": mount_point,
                "fstype": fields[sep + 1],
                "source": fields[sep + 2],
                "dev": fields[2],
            }
    return best


@harness_call
def logical_block_size(path: str | os.PathLike[str]) -> int | None:
    """The device's logical block size (O_DIRECT's alignment unit), from /sys/dev/block."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return None
    base = SYS_BLOCK_DIR / f"{os.major(dev)}:{os.minor(dev)}"
    # A partition has no queue/ of its own: its parent disk's applies.
    for queue in (base / "queue", base / ".." / "queue"):
        text = _read_text(queue / "logical_block_size")
        if text and text.strip().isdigit():
            return int(text)
    return None


@harness_call
def dio_alignment(path: str | os.PathLike[str]) -> dict[str, int] | None:
    """O_DIRECT's alignment for the regular file at ``path``, as its filesystem states it
    (statx STATX_DIOALIGN, Linux 6.1+): ``{memory_bytes, offset_bytes}`` (a buffer's address
    and a transfer's offset and length must be multiples of them). None where the kernel or
    the filesystem does not say; both 0 where the file does not support O_DIRECT at all.
    Unlike ``logical_block_size`` it needs no /sys, which the sandbox does not have."""
    buffer = ctypes.create_string_buffer(STATX_BUFFER_BYTES)
    if libc.statx(AT_FDCWD, os.fsencode(path), 0, STATX_DIOALIGN, buffer) != 0:
        return None
    mask = ctypes.c_uint32.from_buffer(buffer).value
    if not mask & STATX_DIOALIGN:
        return None
    memory, offset = (
        ctypes.c_uint32.from_buffer(buffer, at).value for at in STATX_DIO_ALIGN_OFFSETS
    )
    return {"memory_bytes": memory, "offset_bytes": offset}


@harness_call
def scratch_facts(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The runner's note on a scratch directory (``backing``: the filesystem and device that
    hold its image; ``loop_device``, ``loop_direct_io``, ``cap_bytes``), or None."""
    text = _read_text(Path(directory) / SCRATCH_FACTS_NAME)
    try:
        facts = json.loads(text) if text else None
    except ValueError:
        return None
    return facts if isinstance(facts, dict) else None


@harness_call
def thp() -> dict[str, str | None]:
    """Transparent huge pages: the selected ``enabled`` and ``defrag`` modes (the word in
    brackets: "always", "madvise", "never"), None where /sys does not say."""
    return {name: _bracketed(_read_text(THP_DIR / name)) for name in ("enabled", "defrag")}


@harness_call
def thp_inferred() -> str | None:
    """The THP ``enabled`` mode as the kernel applies it to this process, where /sys is not
    there to say (inside the sandbox): a fresh anonymous private map is THP-eligible by default
    under "always", only after MADV_HUGEPAGE under "madvise", never under "never" (or when
    prctl(PR_SET_THP_DISABLE) is set). Read from smaps' THPeligible; None where smaps lacks it."""
    default = _thp_eligible(None)
    if default is None:
        return None
    if default:
        return "always"
    return "madvise" if _thp_eligible(mmap.MADV_HUGEPAGE) else "never"


def _thp_eligible(advice: int | None) -> bool | None:
    mapped = mmap.mmap(-1, THP_PROBE_BYTES, flags=mmap.MAP_PRIVATE)
    try:
        if advice is not None:
            mapped.madvise(advice)
        view = ctypes.c_char.from_buffer(mapped)
        address = ctypes.addressof(view)
        del view  # a live export would keep the map from closing
        return _smaps_flag(address, "THPeligible")
    finally:
        mapped.close()


def _smaps_flag(address: int, name: str) -> bool | None:
    inside = False
    for line in _read_text(SMAPS_PATH, "").splitlines():
        head = line.split(maxsplit=1)[0] if line else ""
        if "-" in head and ":" not in head:
            start, _, end = head.partition("-")
            inside = int(start, 16) <= address < int(end, 16)
        elif inside and line.startswith(f"{name}:"):
            return line.split()[-1] == "1"
    return None


def _bracketed(text: str | None) -> str | None:
    if not text:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text.strip() or None


@harness_call
def sysctl(name: str) -> str | None:
    """``net.core.rmem_max`` → the text of /proc/sys/net/core/rmem_max, stripped."""
    if ".." in name or name.startswith("/"):
        raise ValueError(f"not a sysctl name: {name!r}")
    text = _read_text(SYSCTL_DIR / name.replace(".", "/"))
    return None if text is None else " ".join(text.split())


@harness_call
def sysctls(*names: str) -> dict[str, str | None]:
    return {name: sysctl(name) for name in names}


@harness_call
def rlimits(names: tuple[str, ...] = RLIMITS) -> dict[str, tuple[int | None, int | None]]:
    """(soft, hard) per rlimit; None stands for unlimited."""
    out = {}
    for name in names:
        soft, hard = resource.getrlimit(getattr(resource, name))
        out[name] = tuple(None if v == resource.RLIM_INFINITY else v for v in (soft, hard))
    return out


@harness_call
def page_size() -> int:
    return os.sysconf("SC_PAGESIZE")


@harness_call
def smaps_rollup() -> dict[str, int]:
    """This process's memory totals in bytes (Rss, AnonHugePages, …) from smaps_rollup."""
    totals: dict[str, int] = {}
    for line in _read_text(SMAPS_ROLLUP_PATH, "").splitlines():
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            totals[name.strip()] = int(parts[0]) * 1024
    return totals


@harness_call
def kernel_release() -> str:
    return os.uname().release


def _read_text(path: Path, default: str | None = None) -> str | None:
    try:
        return path.read_text(errors="replace")
    except (OSError, ValueError):
        return default
