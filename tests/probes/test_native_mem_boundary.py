"""The mmap and errno-boundary native modules: their contracts, apart from the probes."""

from __future__ import annotations

import os

import pytest

from sysops.native import load

pytestmark = pytest.mark.usefixtures("native_extension")

PAGE = os.sysconf("SC_PAGESIZE")


def test_a_map_is_known_by_its_handle_only_while_it_lives() -> None:
    mem = load("_mem")
    handle, map_ns = mem.map(16 * PAGE, False)
    assert map_ns > 0
    touched = mem.touch(handle, "sequential", True)
    assert touched["pages"] == 16 and touched["minor_faults"] >= 16
    assert mem.touch(handle, "page", False)["checksum"] == 16 * mem.TOUCH_BYTE
    assert mem.unmap(handle) > 0
    with pytest.raises(ValueError, match="no live map"):
        mem.touch(handle, "page", True)
    with pytest.raises(ValueError, match="no live map"):
        mem.unmap(12345)


def test_it_rejects_an_unknown_pattern_and_reports_mmap_errors() -> None:
    mem = load("_mem")
    handle, _ = mem.map(PAGE, True)
    try:
        with pytest.raises(ValueError, match="unknown pattern"):
            mem.touch(handle, "diagonal", True)
        with pytest.raises(OSError, match="madvise"):
            mem.advise(handle, 9999)
    finally:
        mem.unmap(handle)
    with pytest.raises(OSError, match="mmap"):
        mem.map(PAGE, True, fd=987654)  # EBADF


def test_the_raw_layer_returns_minus_errno_and_libc_minus_one() -> None:
    boundary = load("_errno")
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        raw = boundary.refused("write", "raw", 3, fd=write_fd, arg=boundary.bad_address())
        libc = boundary.refused("write", "libc", 3, fd=write_fd, arg=boundary.bad_address())
        assert (raw["result"], raw["errno"], raw["calls"]) == (-14, 14, 3)
        assert (libc["result"], libc["errno"]) == (-1, 14)
        # A call that is not refused stops the loop at once and says so.
        os.write(write_fd, b"x")
        done = boundary.refused("read", "raw", 100, fd=read_fd)
        assert (done["result"], done["errno"], done["calls"]) == (1, 0, 1)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    with pytest.raises(ValueError, match="unknown layer"):
        boundary.refused("read", "kernel", 1)
