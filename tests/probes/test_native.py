from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SANDBOX_PYTHON = Path("/usr/bin/python3")

# Each test imports from sysops.native itself: on a fresh checkout the extension exists only
# once the native_extension fixture has built it.
pytestmark = pytest.mark.usefixtures("native_extension")


@pytest.fixture
def fds() -> Iterator[dict[str, int]]:
    zero = os.open("/dev/zero", os.O_RDONLY)
    null = os.open("/dev/null", os.O_WRONLY)
    yield {"read": zero, "write": null}
    os.close(zero)
    os.close(null)


@pytest.mark.parametrize(
    "call", ["getppid", "read", "write", "clock_gettime", "clock_gettime_vdso"]
)
def test_it_returns_elapsed_ns_for_every_call(call: str, fds: dict[str, int]) -> None:
    from sysops.native import loop_ns

    assert loop_ns(call, 1_000, fds.get(call, -1)) > 0


def test_it_lists_its_calls() -> None:
    from sysops.native import CALLS

    assert CALLS == ("getppid", "read", "write", "clock_gettime", "clock_gettime_vdso")


def test_it_takes_keyword_arguments(fds: dict[str, int]) -> None:
    from sysops.native import loop_ns

    assert loop_ns(call="read", iterations=10, fd=fds["read"]) > 0


def test_it_rejects_an_unknown_call() -> None:
    from sysops.native import loop_ns

    with pytest.raises(ValueError, match="unknown call 'fork'"):
        loop_ns("fork", 10)


def test_it_rejects_fewer_than_one_iteration() -> None:
    from sysops.native import loop_ns

    with pytest.raises(ValueError, match="iterations"):
        loop_ns("getppid", 0)


def test_it_needs_an_fd_to_read_or_write() -> None:
    from sysops.native import loop_ns

    with pytest.raises(ValueError, match="read needs an open fd"):
        loop_ns("read", 10)


def test_it_raises_oserror_on_the_first_failing_call(fds: dict[str, int]) -> None:
    from sysops.native import loop_ns

    with pytest.raises(OSError) as raised:
        loop_ns("read", 10, fds["write"])  # /dev/null opened write-only
    assert raised.value.errno == errno.EBADF
    assert raised.value.filename == "read, iteration 0"


def test_it_releases_the_gil_around_the_loop() -> None:
    from sysops.native import loop_ns

    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        loop_ns("getppid", 2_000_000)  # ~0.1 s or more: far past the 5 ms switch interval
    finally:
        stop.set()
        counter.join()
    assert ticks > 1_000


@pytest.mark.skipif(not SANDBOX_PYTHON.exists(), reason="no Debian /usr/bin/python3 here")
def test_it_loads_in_the_sandbox_interpreter() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); "
        "from sysops.native import loop_ns; print(loop_ns('getppid', 100) > 0)"
    )
    completed = subprocess.run(
        [str(SANDBOX_PYTHON), "-I", "-c", code], capture_output=True, text=True, check=False
    )
    assert (completed.returncode, completed.stdout.strip()) == (0, "True"), completed.stderr
