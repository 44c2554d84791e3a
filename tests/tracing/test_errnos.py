"""errnos: what an error means for a learner, and which manual page documents a call."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sysops.tracing.categories import SYSCALL_CATEGORY
from sysops.tracing.errnos import describe, man_page

MAN2 = Path("/usr/share/man/man2")
# Real syscalls that Debian 12's man-pages (6.03) does not document yet.
UNDOCUMENTED_HERE = {"rseq", "futex_waitv"}
COMMON = (
    "ENOENT",
    "EACCES",
    "EPERM",
    "EAGAIN",
    "EINTR",
    "EBADF",
    "EEXIST",
    "EINVAL",
    "EMFILE",
    "ENFILE",
    "ENOMEM",
    "ENOSPC",
    "EFBIG",
    "ECONNREFUSED",
    "ECONNRESET",
    "EPIPE",
    "ENETUNREACH",
    "EINPROGRESS",
    "ETIMEDOUT",
    "EADDRINUSE",
    "ENOSYS",
    "ENOTTY",
    "ECHILD",
    "ESRCH",
    "EISDIR",
    "ENOTDIR",
    "ENAMETOOLONG",
    "ELOOP",
    "EROFS",
    "ESPIPE",
    "EFAULT",
    "EBUSY",
    "EXDEV",
    "ENOTEMPTY",
    "ENOTSOCK",
    "ENOTCONN",
    "EISCONN",
    "EADDRNOTAVAIL",
    "EAFNOSUPPORT",
    "EOPNOTSUPP",
    "EMSGSIZE",
    "EHOSTUNREACH",
)


@pytest.mark.parametrize("name", COMMON)
def test_it_explains_the_common_errors_in_its_own_words(name):
    info = describe(name)
    assert (info.name, info.code) == (name, getattr(errno, name))
    assert info.message == os.strerror(info.code)
    assert info.explanation != info.message + "."
    assert len(info.explanation) < 200


def test_it_falls_back_to_the_c_librarys_message():
    info = describe("ENOLINK")
    assert info.explanation == os.strerror(errno.ENOLINK) + "."


def test_it_shares_the_explanation_of_an_alias():
    assert describe("EWOULDBLOCK").explanation == describe("EAGAIN").explanation


def test_it_knows_the_kernels_restart_codes_that_strace_shows():
    info = describe("ERESTARTSYS")
    assert (info.code, info.message) == (512, "To be restarted if SA_RESTART is set")
    assert "SA_RESTART" in info.explanation


def test_it_admits_an_unknown_name():
    assert (describe("EWHATEVER").code, describe("EWHATEVER").message) == (None, "Unknown error")


@pytest.mark.parametrize(
    ("syscall", "page"),
    [
        ("openat", "openat(2)"),
        ("newfstatat", "fstatat(2)"),
        ("pread64", "pread(2)"),
        ("exit_group", "exit_group(2)"),
        ("rt_sigaction", "sigaction(2)"),
        ("clone3", "clone(2)"),
        ("pselect6", "select(2)"),
    ],
)
def test_it_names_the_manual_page_of_a_syscall(syscall, page):
    assert man_page(syscall) == page


@pytest.mark.skipif(not MAN2.is_dir(), reason="section 2 manual pages are not installed")
def test_it_names_pages_that_exist_for_every_categorised_syscall():
    installed = {path.name.split(".2")[0] for path in MAN2.iterdir()}
    missing = [
        name
        for name in SYSCALL_CATEGORY
        if man_page(name).removesuffix("(2)") not in installed and name not in UNDOCUMENTED_HERE
    ]
    assert missing == []
