"""file-io for real: through the runner, in the sandbox, on the run's own scratch disk, which is
gone after the run, after a cancel, and after its runner is SIGKILLed (the agent's recovery)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sysops.agent import scratch
from sysops.agent.agent import Agent
from sysops.agent.runner import execute
from sysops.models import Run
from sysops.services import run_cancel
from tests.helpers.runs import database_url, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.geteuid() != 0, reason="a scratch disk is a loop-mounted image"),
]

SMALL = {
    "block_bytes": 4096,
    "file_mib": 4,
    "operations": 300,
    "warmup": 10,
    "layers": ["native"],
    "misalign": False,
}
# Long enough to be caught mid-run: thousands of synced writes.
LONG = {**SMALL, "mode": "fsync", "operations": 20_000, "warmup": 0}
SCRATCH_APPEARS_S = 60.0


def run_now(params):
    run = Run.objects.create(experiment="file-io", params=params, status=Run.Status.RUNNING)
    return execute(run.pk, lambda group, message: None)


def rows(run):
    return {row["metric"]: row for row in run.results}


def scratch_left(run_id: int) -> list[str]:
    """Anything of the run's scratch disk still on the host: its directory, a loop device
    attached to its image, a mount of that device."""
    left = [str(p) for p in scratch.scratch_root().glob(f"run-{run_id}-*")]
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with_image = backing.read_text().strip()
        if f"/run-{run_id}-" in with_image and with_image.startswith(str(scratch.scratch_root())):
            left.append(f"{backing.parent.parent.name} → {with_image}")
    return left


def start_runner(params) -> tuple[Run, subprocess.Popen]:
    run = Run.objects.create(experiment="file-io", params=params)
    assert Agent(max_running=1).claim_next() == run.pk
    runner = subprocess.Popen(
        [sys.executable, "-m", "sysops.agent.runner_process", str(run.pk)],
        env={**os.environ, "DATABASE_URL": database_url()},
        stdout=subprocess.DEVNULL,
    )
    Run.objects.filter(pk=run.pk).update(runner_pid=runner.pid)
    deadline = time.monotonic() + SCRATCH_APPEARS_S
    while not scratch_left(run.pk) or not os.path.ismount(_mount_of(run.pk)):
        assert time.monotonic() < deadline, "the run's scratch disk never appeared"
        assert runner.poll() is None, "the runner ended before its scratch disk appeared"
        time.sleep(0.05)
    wait_for(run, lambda r: r.progress > 0)
    return run, runner


def _mount_of(run_id: int) -> str:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if f"/sysops-run-{run_id}-" in fields[4] and fields[4].endswith("/scratch"):
            return fields[4]
    return "/nonexistent"


def test_fsync_is_slower_than_a_buffered_write_on_the_scratch_disk(client):
    buffered = run_now({**SMALL, "mode": "buffered"})
    synced = run_now({**SMALL, "mode": "fsync"})
    for run in (buffered, synced):
        assert run.status == Run.Status.SUCCEEDED, run.reason
        assert not run.unsandboxed
        facts = rows(run)
        assert facts["measures a disk"]["value"] == "yes"
        assert facts["scratch filesystem"]["value"] == "ext4"
        assert facts["scratch device"]["value"].startswith("/dev/loop")
        assert scratch_left(run.pk) == []
    buffered_us = rows(buffered)["buffered write latency (native C)"]["dist"]
    synced_us = rows(synced)["write + fsync latency (native C)"]["dist"]
    assert buffered_us["n"] == synced_us["n"] == 300
    assert synced_us["p99"] is not None  # 300 values support a p99
    # A page-cache copy (microseconds) against a trip to the device (tens of µs at best).
    assert synced_us["median"] > 5 * buffered_us["median"]
    # The page: where the figures come from, and every percentile 300 values support.
    page = client.get(f"/runs/{synced.pk}/").content.decode()
    assert "Where the figures come from" in page and "/dev/loop" in page
    assert "p99.9" in page and "n too small" in page


def test_a_misaligned_o_direct_write_is_explained_not_a_crash():
    run = run_now({**SMALL, "mode": "odirect", "misalign": True, "layers": ["python", "native"]})
    assert run.status == Run.Status.SUCCEEDED, run.reason
    for layer in ("Python os", "native C"):
        refused = rows(run)[f"O_DIRECT write ({layer})"]
        assert refused["value"] == 22 and refused["note"].startswith("EINVAL")
        assert "logical block size" in refused["note"]


def test_a_cancelled_run_leaves_no_scratch_disk():
    run, runner = start_runner(LONG)
    run_cancel(run=run)
    run = wait_for(run, lambda r: r.status != Run.Status.RUNNING)
    assert run.status == Run.Status.CANCELLED, run.reason
    assert runner.wait(30) == 0
    assert scratch_left(run.pk) == []


def test_recovery_removes_the_scratch_disk_of_a_sigkilled_runner():
    run, runner = start_runner(LONG)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    assert scratch_left(run.pk)  # a killed runner cleans nothing up

    assert Agent().recover_stale() == [run.pk]
    assert scratch_left(run.pk) == []
    assert not os.path.ismount(_mount_of(run.pk))
