"""Per-run scratch directories on a real disk, for experiments about disks (fsync, O_DIRECT).

The sandbox's own /tmp is a tmpfs, where fsync is a no-op and O_DIRECT copies memory: a disk
figure taken there measures RAM. A run whose experiment asks for scratch space
(``Experiment.scratch_bytes``) gets its own filesystem instead:

- ``<SYSOPS_SCRATCH_DIR>/run-<run id>-<runner pid>/image``: an ext4 image of a fixed size, on
  the disk that holds var/;
- attached to a loop device with direct I/O, mounted (nodev, nosuid) at ``scratch`` in the
  runner's work dir, its root owned by the run's sandbox uid; the sandbox binds it read-write
  at /scratch (``Policy.scratch_dir``);
- unmounted, detached and deleted after the run (``remove``), or by the agent's recovery once
  the runner that made it is gone (``sweep_stale``: a SIGKILLed runner cleans nothing up).

Why a loop-mounted image, when the size cap must really hold:
- RLIMIT_FSIZE caps the size of one file, not the sum of many files;
- quotas need a filesystem mounted with them (this host's root ext4 is not), and switching them
  on is a host-wide change for one experiment;
- a filesystem of a fixed size is a cap the kernel enforces: past it every write fails ENOSPC.
What the loop layer costs, measured with fio on a quiet host (bench/file_io.py: 4 KiB blocks,
psync, median latency on the root ext4 → on the loop ext4): write+fsync 106 → 197 µs, O_SYNC
write 109 → 191 µs, O_DIRECT write 35 → 57 µs, cold read 37 → 43 µs. The figures stay those of a
disk (a flush on the loop device becomes an fsync of the image file: 200 fsyncs inside sent 332
flush requests to /dev/vda, 200 plain writes none), with the loop's own hop on top; the page
names the loop device and the disk behind it, and bench/file_io.py compares against fio on the
same scratch filesystem. The loop device hands each request to a
kernel worker thread, which needs a CPU: on a busy host (two cores at load 10 here) its median
moved by whole multiples between runs (a cold 4 KiB read: 75 µs in one, 830 µs in another,
against a steady 38 µs on the disk directly), so the disk modes' figures are only as quiet as
the host's CPUs.

Direct I/O on the loop device (``losetup --direct-io=on``): without it the image's blocks would
be cached a second time in the host's page cache, and a "cold" read (after
posix_fadvise(DONTNEED) inside) would be served from that second cache, not from the disk.

Why the mount point is in the runner's work dir and not beside the image: bubblewrap resolves a
bind's source as the sandbox uid, and var/ is private to the app's user (0700).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from sysops.worker.toolkit import hostfacts

# ext4's own metadata (a 4 MiB journal, inode tables, bitmaps) on top of what the run may write.
IMAGE_SLACK_BYTES = 16 << 20
IMAGE_NAME = "image"
MOUNT_NAME = "scratch"
COMMAND_TIMEOUT_S = 60.0
# A run makes a handful of files; few inodes leave the space to the data.
IMAGE_INODES = 64
LOOP_SYSFS = Path("/sys/block")


class ScratchError(RuntimeError):
    """The scratch directory could not be made; the message says why."""


@dataclass(frozen=True)
class Scratch:
    root: Path  # the per-run directory under SYSOPS_SCRATCH_DIR, holding the image
    mount_point: Path  # where the image is mounted on the host (Policy.scratch_dir)
    device: str  # the loop device, e.g. /dev/loop3
    cap_bytes: int  # what the run may write: the filesystem's free space when made
    facts: dict[str, Any]

    def describe(self) -> str:
        backing = self.facts["backing"]
        return (
            f"scratch directory: ext4 on {self.device} (direct I/O "
            f"{'on' if self.facts['loop_direct_io'] else 'off'}), an image of "
            f"{self.facts['image_bytes'] >> 20} MiB on {backing['type']} {backing['device']}; "
            f"a run may write {self.cap_bytes >> 20} MiB there"
        )


def scratch_root() -> Path:
    return Path(settings.SYSOPS_SCRATCH_DIR)


def create(run_id: int, size_bytes: int, mount_parent: Path, uid: int) -> Scratch:
    """A size-capped scratch filesystem for one run, owned by ``uid``, mounted in
    ``mount_parent``. Raises ScratchError (with nothing left behind) when it cannot."""
    if os.geteuid() != 0:
        raise ScratchError(
            "a size-capped scratch directory is an ext4 image on a loop device, which needs a "
            f"root agent; this one runs as uid {os.geteuid()}"
        )
    base = scratch_root()
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    backing = hostfacts.filesystem(base)
    root = base / f"run-{run_id}-{os.getpid()}"
    _remove_dir(root)  # a leftover of an earlier attempt by this same process
    root.mkdir(mode=0o700)
    mount_point = mount_parent / MOUNT_NAME
    device = ""
    try:
        image = root / IMAGE_NAME
        image_bytes = size_bytes + IMAGE_SLACK_BYTES
        with open(image, "xb") as f:
            f.truncate(image_bytes)  # sparse: the disk is used only as the run writes
        _command(
            "mkfs.ext4", "-q", "-F", "-m", "0", "-N", str(IMAGE_INODES), "-J", "size=4",
            "-E", f"nodiscard,root_owner={uid}:{uid}", str(image),
        )  # fmt: skip
        device = _command("losetup", "--find", "--show", "--direct-io=on", str(image)).strip()
        mount_point.mkdir(mode=0o700)
        _command("mount", "-t", "ext4", "-o", "nodev,nosuid", device, str(mount_point))
        os.chmod(mount_point, 0o700)  # the image's root: owned by uid (root_owner above)
        fs = os.statvfs(mount_point)
        cap_bytes = fs.f_bavail * fs.f_frsize
        facts = {
            "backing": {k: backing[k] for k in ("type", "device", "mount_point", "is_disk")},
            "image": str(image),
            "image_bytes": image_bytes,
            "loop_device": device,
            "loop_direct_io": _loop_attr(device, "dio") == "1",
            "cap_bytes": cap_bytes,
        }
        facts_path = mount_point / hostfacts.SCRATCH_FACTS_NAME
        facts_path.write_text(json.dumps(facts))
        facts_path.chmod(0o444)
    except (OSError, ScratchError) as exc:
        _unmount(mount_point, device)
        _remove_dir(root)
        raise ScratchError(f"could not make the scratch directory: {exc}") from exc
    return Scratch(root, mount_point, device, cap_bytes, facts)


def remove(scratch: Scratch) -> list[str]:
    """Unmount, detach and delete; returns what could not be removed (nothing, normally)."""
    problems = _unmount(scratch.mount_point, scratch.device)
    _remove_dir(scratch.root)
    if scratch.root.exists():
        problems.append(f"{scratch.root} not removed")
    return problems


def sweep_stale() -> list[str]:
    """Remove the scratch directories whose runner process is gone (a SIGKILLed runner, a
    crashed host); returns the names removed. The pid in a directory's name is its runner's:
    while that process lives, its run may still be using the directory."""
    base = scratch_root()
    if not base.is_dir():
        return []
    removed = []
    for root in sorted(base.glob("run-*-*")):
        pid = root.name.rsplit("-", 1)[-1]
        if pid.isdigit() and Path(f"/proc/{pid}").exists():
            continue
        for device, mount_points in _loops_backed_by(root / IMAGE_NAME).items():
            for mount_point in mount_points:
                _unmount(mount_point, "")
            _unmount(None, device)
        _remove_dir(root)
        removed.append(root.name)
    return removed


def _loops_backed_by(image: Path) -> dict[str, list[Path]]:
    """Loop device -> its mount points, for the loop devices attached to ``image``."""
    found: dict[str, list[Path]] = {}
    for backing_file in LOOP_SYSFS.glob("loop*/loop/backing_file"):
        try:
            backing = backing_file.read_text().strip().removesuffix(" (deleted)")
        except OSError:
            continue
        if backing == str(image):
            device = f"/dev/{backing_file.parent.parent.name}"
            found[device] = _mount_points_of(backing_file.parent.parent / "dev")
    return found


def _mount_points_of(dev_file: Path) -> list[Path]:
    try:
        major_minor = dev_file.read_text().strip()
    except OSError:
        return []
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[2] == major_minor:
            points.append(Path(fields[4].replace("\\040", " ")))
    return points


def _loop_attr(device: str, name: str) -> str | None:
    try:
        return (LOOP_SYSFS / Path(device).name / "loop" / name).read_text().strip()
    except OSError:
        return None


def _unmount(mount_point: Path | None, device: str) -> list[str]:
    problems = []
    if mount_point is not None and os.path.ismount(mount_point):
        try:
            _command("umount", str(mount_point))
        except ScratchError:
            # Busy (a process of the run still inside, which cleanup should have killed):
            # detach it now; the kernel frees it when the last user goes.
            try:
                _command("umount", "--lazy", str(mount_point))
            except ScratchError as exc:
                problems.append(str(exc))
    if mount_point is not None and mount_point.is_dir() and not os.path.ismount(mount_point):
        with contextlib.suppress(OSError):  # not empty: not ours to delete
            mount_point.rmdir()
    if device:
        try:
            _command("losetup", "--detach", device)
        except ScratchError as exc:
            problems.append(str(exc))
    return problems


def _remove_dir(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


def _command(*argv: str) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ScratchError(f"{argv[0]}: {exc}") from exc
    if done.returncode != 0:
        raise ScratchError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout
