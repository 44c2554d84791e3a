"""Categories and trace sets: every listed name is a real syscall strace accepts."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from sysops.tracing.categories import CATEGORIES, SYSCALL_CATEGORY, category_of, syscalls_in

STRACE_TIMEOUT_S = 30
needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is missing")


def run_strace(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["strace", "-o", "/dev/null", *args, "true"],
        capture_output=True,
        text=True,
        timeout=STRACE_TIMEOUT_S,
        check=False,
    )


@pytest.mark.parametrize(
    ("syscall", "category"),
    [
        ("openat", "file"),
        ("newfstatat", "file"),
        ("pipe2", "file"),
        ("mmap", "memory"),
        ("madvise", "memory"),
        ("accept4", "network"),
        ("epoll_wait", "network"),
        ("pselect6", "network"),
        ("clone3", "process"),
        ("exit_group", "process"),
        ("futex", "process"),
        ("rt_sigreturn", "signal"),
        ("tgkill", "signal"),
        ("clock_gettime", "other"),
        ("not_a_syscall", "other"),
    ],
)
def test_it_puts_each_syscall_in_its_family(syscall, category):
    assert category_of(syscall) == category


def test_it_lists_each_name_in_one_category_only():
    listed = [name for category in CATEGORIES for name in syscalls_in(category)]
    assert len(listed) == len(set(listed)) == len(SYSCALL_CATEGORY)


@needs_strace
def test_it_lists_only_names_strace_knows_on_this_architecture():
    # Without the "?" prefix strace refuses unknown names: this catches typos in the table.
    completed = run_strace("-e", f"trace={','.join(SYSCALL_CATEGORY)}")
    assert completed.returncode == 0, completed.stderr
