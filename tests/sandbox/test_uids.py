"""Leasing sandbox uids: one run per uid, across processes and installs, never a mapped range."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sysops.sandbox import uids

pytestmark = pytest.mark.skipif(not uids.caller_is_root(), reason="only root leases uids")
REPO_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_range() -> range:
    # Inside this checkout's configured range, so no other checkout uses these uids.
    start = uids.configured_range().stop - 3
    return range(start, start + 3)


def hold_lease_elsewhere(lock_dir: Path, uid_range: range) -> tuple[subprocess.Popen[str], int]:
    """Another process (another agent, another install) leases a uid and keeps it."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from sysops.sandbox import uids\n"
        f"lease = uids.lease_uid(uids=range({uid_range.start}, {uid_range.stop}), "
        f"lock_dir=Path({str(lock_dir)!r}))\n"
        "print(lease.uid, flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_DIR, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    return holder, int(holder.stdout.readline())


def test_it_never_leases_one_uid_twice(tmp_path, small_range):
    with (
        uids.lease_uid(uids=small_range, lock_dir=tmp_path) as first,
        uids.lease_uid(uids=small_range, lock_dir=tmp_path) as second,
    ):
        assert first.uid != second.uid
        assert {first.uid, second.uid} <= set(small_range)
        assert first.dedicated and uids.is_dedicated(first.uid)
    with uids.lease_uid(uids=range(first.uid, first.uid + 1), lock_dir=tmp_path) as again:
        assert again.uid == first.uid  # released, so free again


def test_it_skips_a_uid_another_process_holds_until_that_process_dies(tmp_path, small_range):
    holder, held = hold_lease_elsewhere(tmp_path, small_range)
    try:
        with uids.lease_uid(uids=small_range, lock_dir=tmp_path) as mine:
            assert mine.uid != held
    finally:
        holder.kill()
        holder.wait()
    # The lock died with its holder (a SIGKILLed runner frees its uid).
    with uids.lease_uid(uids=range(held, held + 1), lock_dir=tmp_path) as freed:
        assert freed.uid == held


def test_it_skips_a_uid_that_still_has_processes(tmp_path, small_range):
    squatter = subprocess.Popen(
        ["sleep", "30"], user=small_range[0], group=small_range[0], extra_groups=[]
    )
    try:
        two = range(small_range[0], small_range[0] + 2)
        for _ in range(5):  # whichever uid the scan starts at
            with uids.lease_uid(uids=two, lock_dir=tmp_path) as lease:
                assert lease.uid == two[1]
    finally:
        squatter.kill()
        squatter.wait()


def test_it_says_when_every_uid_is_taken(tmp_path, small_range):
    one = range(small_range.start, small_range.start + 1)
    taken = "every uid of .* is leased or still in use"
    with (
        uids.lease_uid(uids=one, lock_dir=tmp_path),
        pytest.raises(uids.UidUnavailable, match=taken),
    ):
        uids.lease_uid(uids=one, lock_dir=tmp_path)


def test_it_refuses_a_range_that_overlaps_subordinate_ids(tmp_path, monkeypatch, small_range):
    subuid = tmp_path / "subuid"
    subuid.write_text(f"builder:{small_range.start - 10}:65536\n")
    monkeypatch.setattr(uids, "ID_MAP_FILES", (subuid,))

    with pytest.raises(uids.UidUnavailable, match="overlaps .*subuid gives builder"):
        uids.lease_uid(uids=small_range, lock_dir=tmp_path)


def test_it_reads_the_range_from_the_environment():
    assert uids.configured_range({"SYSOPS_SANDBOX_UIDS": "300000:100"}) == range(300000, 300100)
    assert uids.configured_range({"SYSOPS_SANDBOX_UID_BASE": "200000"}) == range(200000, 250000)
    assert uids.configured_range({}).start == uids.DEFAULT_UID_START
    with pytest.raises(uids.UidUnavailable, match="not START:COUNT"):
        uids.configured_range({"SYSOPS_SANDBOX_UIDS": "300000-300100"})
    with pytest.raises(uids.UidUnavailable, match="not usable"):
        uids.configured_range({"SYSOPS_SANDBOX_UIDS": "0:10"})


def test_the_default_lock_dir_is_host_wide():
    # Not under the checkout or the run dir: every install on the host must see the same locks.
    assert str(uids.LEASE_DIR) == "/run/sysops/uids"
