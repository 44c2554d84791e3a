"""split_args: strace's arguments split at top-level commas only."""

from __future__ import annotations

import pytest

from sysops.tracing.parse import split_args

CASES = {
    "plain": ("3, 4096, 0", ["3", "4096", "0"]),
    "no arguments": ("", []),
    "quotes with escaped quote and comma": (
        r'1, "a,\"b", 3',
        ["1", r'"a,\"b"', "3"],
    ),
    "escaped backslash before the closing quote": (
        r'"dir\\", 0',
        [r'"dir\\"', "0"],
    ),
    "truncated string": ('3, "abc, def"..., 4096', ["3", '"abc, def"...', "4096"]),
    "epoll events list": (
        "5, [{fd=3, events=EPOLLIN}, {fd=4, events=EPOLLOUT}], 2, -1",
        ["5", "[{fd=3, events=EPOLLIN}, {fd=4, events=EPOLLOUT}]", "2", "-1"],
    ),
    "sockaddr with calls and quotes": (
        '3, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("10.0.0.1")}, 16',
        [
            "3",
            '{sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("10.0.0.1")}',
            "16",
        ],
    ),
    "struct with ellipsis": (
        '3, "", {st_mode=S_IFREG|0644, st_size=10, ...}, AT_EMPTY_PATH',
        ["3", '""', "{st_mode=S_IFREG|0644, st_size=10, ...}", "AT_EMPTY_PATH"],
    ),
    "count comment": (
        '"/bin/x", ["x"], 0x7ffd /* 5 entries */',
        ['"/bin/x"', '["x"]', "0x7ffd /* 5 entries */"],
    ),
    "comment holding a comma": ("1, 2 /* a, b */, 3", ["1", "2 /* a, b */", "3"]),
    "elided array comment": ("[1, 2, /* ... */], 4", ["[1, 2, /* ... */]", "4"]),
    "decorated path with comma and space": (
        "3</tmp/a, b>, 0, SEEK_SET",
        ["3</tmp/a, b>", "0", "SEEK_SET"],
    ),
    "decorated TCP socket with arrow": (
        "3<TCP:[127.0.0.1:40000->127.0.0.1:5000]>, 16",
        ["3<TCP:[127.0.0.1:40000->127.0.0.1:5000]>", "16"],
    ),
    "decorated device inside decoration": (
        "1</dev/pts/0<char 136:0>>, TCGETS, 0x7ffc",
        ["1</dev/pts/0<char 136:0>>", "TCGETS", "0x7ffc"],
    ),
    "in-out value": (
        "3, {sa_family=AF_UNIX}, [128 => 2]",
        ["3", "{sa_family=AF_UNIX}", "[128 => 2]"],
    ),
    "changed struct at top level": (
        "{flags=CLONE_VM, stack=0x1} => {parent_tid=[3]}, 88",
        ["{flags=CLONE_VM, stack=0x1} => {parent_tid=[3]}", "88"],
    ),
    "wait status expression": (
        "-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL",
        ["-1", "[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]", "0", "NULL"],
    ),
    "deeper than the fast path unrolls": (
        "[[[[[[[1, 2]]]]]]], {a=[{b=[{c=[1, 2]}]}]}, 3",
        ["[[[[[[[1, 2]]]]]]]", "{a=[{b=[{c=[1, 2]}]}]}", "3"],
    ),
    "resuming comment of restart_syscall": (
        "<... resuming interrupted read ...>",
        ["<... resuming interrupted read ...>"],
    ),
}


@pytest.mark.parametrize(("text", "expected"), CASES.values(), ids=CASES.keys())
def test_it_splits_only_at_top_level_commas(text, expected):
    assert split_args(text) == expected


def test_it_returns_instead_of_hanging_on_unbalanced_text():
    # Possessive regex quantifiers: no exponential backtracking on a half-written line.
    text = "[" * 40 + "a, b" + "{" * 40 + '"abc'
    assert split_args(text) == [text]
