from __future__ import annotations

import subprocess

import pytest

from sysops.worker.toolkit import hostfacts


def test_it_names_the_filesystem_as_the_kernel_does(tmp_path) -> None:
    facts = hostfacts.filesystem(tmp_path)
    expected = subprocess.run(
        ["stat", "-f", "-c", "%T", str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout.strip()
    # stat(1) says "ext2/ext3" for the ext magic; ours names it from mountinfo.
    assert facts["type"].startswith(expected.split("/")[0].rstrip("0123456789")[:3])
    assert facts["mount_point"] and facts["block_size"] > 0


def test_a_tmpfs_is_not_a_disk() -> None:
    facts = hostfacts.filesystem("/dev/shm")
    assert facts["type"] == "tmpfs" and facts["is_disk"] is False


def test_sysctls_and_thp_are_read_or_none() -> None:
    assert hostfacts.sysctl("kernel.ostype") == "Linux"
    assert hostfacts.sysctl("kernel.no_such_sysctl") is None
    with pytest.raises(ValueError):
        hostfacts.sysctl("../../etc/passwd")
    assert hostfacts.thp()["enabled"] in (None, "always", "madvise", "never")


def test_rlimits_and_memory_totals() -> None:
    soft, hard = hostfacts.rlimits()["RLIMIT_NOFILE"]
    assert soft is None or soft > 0
    assert hostfacts.page_size() in (4096, 16384, 65536)
    assert hostfacts.smaps_rollup()["Rss"] > 0


def test_o_direct_alignment_comes_from_statx_where_the_filesystem_states_it(tmp_path) -> None:
    regular = tmp_path / "f"
    regular.write_bytes(b"x")
    alignment = hostfacts.dio_alignment(regular)
    if hostfacts.filesystem(tmp_path)["type"] in ("ext4", "xfs", "btrfs"):
        assert alignment is not None
        assert alignment["offset_bytes"] in (512, 1024, 2048, 4096)
        assert alignment["memory_bytes"] >= 1
    assert hostfacts.dio_alignment(tmp_path / "missing") is None


def test_the_scratch_note_is_read_or_none(tmp_path) -> None:
    assert hostfacts.scratch_facts(tmp_path) is None
    (tmp_path / hostfacts.SCRATCH_FACTS_NAME).write_text('{"cap_bytes": 1048576}')
    assert hostfacts.scratch_facts(tmp_path) == {"cap_bytes": 1048576}
    (tmp_path / hostfacts.SCRATCH_FACTS_NAME).write_text("not json")
    assert hostfacts.scratch_facts(tmp_path) is None
