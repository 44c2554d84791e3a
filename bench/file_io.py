"""file-io against fio, per sync mode, on the same scratch disk with the same block size.

One scratch disk is made as the runner makes it (an ext4 image on a loop device with direct I/O,
under var/scratch). For each mode, in alternating rounds: our probe in the real sandbox (native
C layer, the disk bound at /scratch) and fio (psync engine, one job) on a file of the same size
in the same filesystem, both overwriting a file written and synced beforehand. Printed per mode:
our median latency per operation, fio's, the median and range of the per-round ratios ours/fio
(goal 0.9–1.1), and fio on the disk behind the image (var/ itself), which is what the loop
layer costs. Needs root (the loop mount) and fio (Debian: fio; `scripts/setup.sh bench`
installs it). Run from the repository root:

    .venv/bin/python bench/file_io.py [--block 4096] [--rounds 5] [--modes fsync,odirect]

fio reports a write+fsync as two latencies (the write's clat and the fsync's): for the fsync
and fdatasync modes its figure is the sum of the two medians, against our median of the pair
timed together.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

FILE_MIB = 16
PREPARE_CHUNK_BYTES = 1 << 20
# Operations per measurement: enough for a median, few enough for a busy disk.
DISK_OPERATIONS = 300
MEMORY_OPERATIONS = 5_000
DISK_MODES = ("fsync", "fdatasync", "osync", "odsync", "odirect", "read_cold")
ALL_MODES = ("buffered", *DISK_MODES[:5], "read_cached", "read_cold")
# fio options for each of our modes (psync: one pread/pwrite per operation, as ours). Writes
# keep the page cache as the preparation left it (--invalidate=0), as the probe does: here a
# 4 KiB overwrite of a cached file written in 1 MiB chunks (large folios) costs about 9 µs,
# against 3 µs into freshly allocated small pages, for fio and for us alike.
WRITE = ["--rw=write", "--invalidate=0"]
FIO_MODE_ARGS = {
    "buffered": WRITE,
    "fsync": [*WRITE, "--fsync=1"],
    "fdatasync": [*WRITE, "--fdatasync=1"],
    "osync": [*WRITE, "--sync=1"],
    "odsync": [*WRITE, "--sync=dsync"],
    "odirect": [*WRITE, "--direct=1"],
    "read_cached": ["--rw=read", "--invalidate=0"],
    # Dropped from the cache at the start, readahead off: every read goes to the device.
    "read_cold": ["--rw=read", "--invalidate=1", "--fadvise_hint=random"],
}
FIO_TIMEOUT_S = 300
SANDBOX_WALL_S = 300.0


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    import django

    django.setup()


def prepare(path: Path, file_bytes: int, *, cached: bool) -> None:
    """The file written in full and synced (as the probe does), then read through for the
    page-cache read mode."""
    chunk = bytes(range(256)) * (PREPARE_CHUNK_BYTES // 256)
    with open(path, "wb") as f:
        for _ in range(file_bytes // len(chunk)):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    if cached:
        path.read_bytes()


def fio_median_us(fio: str, path: Path, mode: str, block: int, operations: int) -> float:
    prepare(path, FILE_MIB << 20, cached=mode == "read_cached")
    completed = subprocess.run(
        [
            fio,
            "--name=bench",
            f"--filename={path}",
            f"--bs={block}",
            f"--size={FILE_MIB}M",
            f"--number_ios={operations}",
            "--ioengine=psync",
            "--output-format=json",
            *FIO_MODE_ARGS[mode],
        ],
        capture_output=True,
        text=True,
        timeout=FIO_TIMEOUT_S,
        check=True,
    )
    job = json.loads(completed.stdout[completed.stdout.index("{") :])["jobs"][0]
    side = job["read" if mode.startswith("read") else "write"]
    median_ns = side["clat_ns"]["percentile"]["50.000000"]
    if mode in ("fsync", "fdatasync"):
        median_ns += job["sync"]["lat_ns"]["percentile"]["50.000000"]
    return median_ns / 1e3


def ours_median_us(policy, mode: str, block: int, operations: int) -> float:
    """The probe in the real sandbox on the scratch disk, native layer, as a run does it."""
    from sysops import sandbox

    params = {
        "mode": mode,
        "block_bytes": block,
        "file_mib": FILE_MIB,
        "operations": operations,
        "warmup": 10,
        "layers": ["native"],
    }
    with tempfile.TemporaryFile() as events:
        command = sandbox.worker_command(policy)
        proc = sandbox.start(policy, command, pass_fds=(events.fileno(),), stdin=subprocess.PIPE)
        assert proc.stdin is not None
        job = {"probe": "sysops.experiments.file_io.probe", "params": params}
        proc.stdin.write(json.dumps({**job, "events_fd": events.fileno()}).encode())
        proc.stdin.close()
        proc.wait_until_deadline()
        proc.cleanup()
        events.seek(0)
        lines = [json.loads(line) for line in events.read().splitlines()]
    errors = [e["message"] for e in lines if e["type"] == "error"]
    if errors:
        raise RuntimeError(f"{mode}: the probe failed: {errors[-1]}")
    rows = [r for e in lines if e["type"] == "result" for r in e["rows"]]
    (latency,) = [r for r in rows if r.get("layer") == "native" and r["unit"] == "µs"]
    return latency["dist"]["median"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=4096, help="bytes per operation")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per mode")
    parser.add_argument("--modes", default=",".join(ALL_MODES), help="comma-separated modes")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(ALL_MODES)
    if unknown:
        parser.error(f"unknown modes {', '.join(sorted(unknown))}; choose from {ALL_MODES}")
    fio = shutil.which("fio")
    if fio is None:
        print("fio is not installed (Debian: apt-get install fio); nothing to compare.")
        return 0
    if os.geteuid() != 0:
        print("the scratch disk is a loop-mounted ext4 image: run as root; nothing measured.")
        return 0

    setup_django()
    from sysops import sandbox
    from sysops.agent import scratch
    from sysops.sandbox import uids

    sandbox.set_child_subreaper()
    work = Path(tempfile.mkdtemp(prefix="sysops-bench-fileio-"))
    work.chmod(0o755)
    uid = uids.choose_uid(None, None)
    made = None
    try:
        sandbox.stage_code(work / "code")
        made = scratch.create(os.getpid(), (2 * FILE_MIB + 8) << 20, work, uid)
        policy = sandbox.Policy(
            code_dir=work / "code",
            wall_s=SANDBOX_WALL_S,
            cpu_s=120,
            file_size_bytes=made.cap_bytes,
            scratch_dir=made.mount_point,
            sandbox_uid=uid,
        )
        backing_dir = made.root  # on the disk behind the image: fio without the loop layer
        print(made.describe())
        print(f"block {args.block} B, file {FILE_MIB} MiB, {args.rounds} alternating rounds")
        print(
            f"{'mode':<12} {'ours µs':>9} {'fio µs':>9} {'ours/fio':>9} {'per round':>12} "
            f"{'fio, no loop µs':>16}"
        )
        for mode in modes:
            operations = DISK_OPERATIONS if mode in DISK_MODES else MEMORY_OPERATIONS
            ours, theirs, direct = [], [], []
            for _ in range(args.rounds):
                ours.append(ours_median_us(policy, mode, args.block, operations))
                fio_file = made.mount_point / "fio.dat"
                theirs.append(fio_median_us(fio, fio_file, mode, args.block, operations))
                fio_file.unlink()
                direct_file = backing_dir / "fio.dat"
                direct.append(fio_median_us(fio, direct_file, mode, args.block, operations))
                direct_file.unlink()
            # Each round's pair ran back to back: its ratio is the figure least moved by a
            # neighbour's load, which moves a disk's latency by whole multiples here.
            ratios = sorted(a / b for a, b in zip(ours, theirs, strict=True))
            print(
                f"{mode:<12} {statistics.median(ours):>9.2f} {statistics.median(theirs):>9.2f} "
                f"{statistics.median(ratios):>9.2f} {ratios[0]:>5.2f}–{ratios[-1]:<5.2f} "
                f"{statistics.median(direct):>16.2f}"
            )
    finally:
        if made is not None:
            scratch.remove(made)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
