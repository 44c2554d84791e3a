"""The scratch disk from inside the real sandbox: a size cap the kernel holds, and a probe that
says so when it is pointed at the sandbox's own tmpfs instead."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from sysops import sandbox
from sysops.agent import scratch
from sysops.sandbox import uids

FILE_IO_PROBE = "sysops.experiments.file_io.probe"
CAP_BYTES = 8 << 20
CHUNK_BYTES = 1 << 20
# Fills /scratch with 1 MiB writes over many files (RLIMIT_FSIZE caps only one) until the
# kernel refuses; prints what it wrote and the errno.
FILL_SCRIPT = f"""
import json, os
written, err, n = 0, 0, 0
chunk = b"x" * {CHUNK_BYTES}
while not err and written < {20 * CAP_BYTES}:
    fd = os.open(f"/scratch/fill-{{n}}", os.O_WRONLY | os.O_CREAT, 0o600)
    n += 1
    try:
        for _ in range(4):
            written += os.write(fd, chunk)
    except OSError as exc:
        err = exc.errno
    finally:
        os.close(fd)
print(json.dumps({{"written": written, "errno": err}}))
"""


@pytest.fixture
def root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("a scratch disk is a loop-mounted image: it needs root")


def test_a_run_pointed_at_the_sandbox_tmp_is_flagged_as_not_a_disk(run_worker, policy):
    params = {
        "mode": "fsync",
        "block_bytes": 4096,
        "file_mib": 1,
        "operations": 50,
        "warmup": 0,
        "layers": ["native"],
        "directory": "/tmp",
    }
    run = run_worker(policy, params, probe=FILE_IO_PROBE)
    assert run.outcome.exit_code == 0, run.stderr
    rows = run.rows()
    assert rows["measures a disk"]["value"] == "NO"
    assert rows["scratch filesystem"]["value"] == "tmpfs"
    assert "RAM" in rows["measures a disk"]["note"]
    # It still ran, and says so: the figures exist, flagged.
    assert rows["write + fsync latency (native C)"]["dist"]["n"] == 50


def test_a_run_cannot_write_past_its_scratch_cap(root_only, can_sandbox, policy, public_dir: Path):
    lease = uids.lease_uid()  # the test's own uid, as a run gets one
    made = scratch.create(46_999, CAP_BYTES, public_dir, lease.uid)
    try:
        assert made.cap_bytes >= CAP_BYTES
        capped = replace(policy, scratch_dir=made.mount_point, sandbox_uid=lease.uid)
        proc = sandbox.start(
            capped,
            ["/usr/bin/python3", "-S", "-c", FILL_SCRIPT],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.wait_until_deadline()
        proc.cleanup()
        result = json.loads(out)
    finally:
        assert scratch.remove(made) == []
        lease.release()
    assert result["errno"] == errno.ENOSPC
    # All it was promised, and not a block past the filesystem it was given.
    assert CAP_BYTES <= result["written"] <= made.facts["image_bytes"]
    assert not made.root.exists() and not os.path.ismount(made.mount_point)


def test_the_scratch_directory_is_bound_read_write_before_the_root_goes_read_only(policy):
    argv = sandbox.bwrap_argv(replace(policy, scratch_dir=Path("/srv/s")), ["true"], seccomp_fd=9)
    bind = argv.index("--bind")
    assert argv[bind : bind + 3] == ["--bind", "/srv/s", "/scratch"]
    assert bind < argv.index("--remount-ro")
    assert "--bind" not in sandbox.bwrap_argv(policy, ["true"], seccomp_fd=9)
