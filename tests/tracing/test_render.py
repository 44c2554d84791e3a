"""The one renderer per trace output, on the golden captures of real strace output."""

from __future__ import annotations

import re

import pytest

from sysops.tracing import render
from sysops.tracing.parse import parse_text
from sysops.tracing.summary import Summary
from tests.tracing.fixture_files import OUTPUT_FILE_CAPTURES, strace_text

STRACE_PADDING = re.compile(r"\) += +")


@pytest.mark.parametrize("name", OUTPUT_FILE_CAPTURES)
def test_every_whole_line_renders_exactly_as_strace_printed_it(name):
    checked = 0
    for event in parse_text(strace_text(name)):
        whole = event.raw and not event.cut_short and "resumed>" not in event.raw
        whole = whole and "<unfinished ...>" not in event.raw
        if event.kind in ("syscall", "signal", "exit", "killed") and whole:
            # strace pads around " = " to align the results.
            printed = STRACE_PADDING.sub(") = ", event.raw)
            assert render.strace_line(event) == printed
            # What the page shows is the same line without the pid and time.
            assert printed.endswith(" " + render.live_record(event)["text"])
            checked += 1
    assert checked > 10


def test_unfinished_calls_errors_and_exits_read_as_strace_writes_them():
    events = parse_text(
        "5 1.000000 read(3,  <unfinished ...>\n"
        "5 1.000001 +++ killed by SIGKILL +++\n"
        '6 1.000002 openat(AT_FDCWD, "/nope", O_RDONLY) = -1 ENOENT (No such file or directory)'
        " <0.000004>\n"
        "6 1.000003 +++ exited with 3 +++\n"
    )
    assert [render.live_record(e)["text"] for e in events] == [
        "read(3,  <unfinished ...>",
        "+++ killed by SIGKILL +++",
        'openat(AT_FDCWD, "/nope", O_RDONLY) = -1 ENOENT (No such file or directory) <0.000004>',
        "+++ exited with 3 +++",
    ]
    assert "raw" not in render.live_record(events[0])


def test_the_summary_text_is_strace_c_shaped():
    summary = Summary()
    summary.add_all(parse_text(strace_text("workload")))
    lines = render.summary_lines(summary.to_dict())
    assert lines[0].split() == ["%", "time", "seconds", "usecs/call", "calls", "errors", "syscall"]
    assert lines[-1].split()[-1] == "total"
    assert int(lines[-1].split()[-2 if not summary.total_errors else -3]) == summary.total_calls
    assert render.summary_lines(None) == render.summary_lines({}) == []


@pytest.mark.parametrize(
    ("observer", "expected"),
    [
        (None, ""),
        ({}, ""),
        ({"untraced_work_s": None, "traced_work_s": 0.2}, "Observer effect: not measured."),
        ({"metric": "requests/s", "untraced_rate": None}, "on requests/s: not measured."),
        (
            {"untraced_work_s": 0.1, "traced_work_s": 0.5, "slowdown": None},
            "took 100.0 ms untraced and 500.0 ms traced (slowdown unknown).",
        ),
        (
            {"metric": "requests/s", "untraced_rate": 1000, "traced_rate": 10, "slowdown": 100},
            "requests/s 1,000 untraced, 10 traced (100.0× slower).",
        ),
    ],
)
def test_the_observer_sentence_never_formats_a_missing_value(observer, expected):
    sentence = render.observer_sentence(observer)
    assert sentence.endswith(expected) if expected else sentence == ""
