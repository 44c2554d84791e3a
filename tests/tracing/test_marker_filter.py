"""MarkerFilter: only the experiment's own work, from the begin marker to the end marker."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sysops.tracing.filter import MarkerFilter, between_markers
from sysops.tracing.markers import marker_of
from sysops.tracing.parse import TraceParser, parse_text
from tests.tracing.fixture_files import strace_text

REPO_ROOT = Path(__file__).resolve().parents[2]
STRACE_TIMEOUT_S = 60


def kept(text: str) -> list:
    return list(between_markers(parse_text(text)))


def test_it_keeps_the_workload_its_thread_and_its_child_but_no_start_up_or_shutdown():
    events = kept(strace_text("workload"))
    assert {event.pid for event in events} == {27490, 27493, 27494}
    first, last = events[0], events[-1]
    assert (first.name, first.args[1]) == (
        "openat",
        '"/tmp/sysops-fixture-wsdd2o0z/data, with comma.bin"',
    )
    assert (last.name, last.args) == ("close", ["3<pipe:[107843]>"])
    assert not [event for event in events if marker_of(event)]


def test_it_drops_the_sandbox_processes_that_were_running_before_the_marker():
    all_events = parse_text(strace_text("sandboxed"))
    events = list(between_markers(all_events))
    # bwrap (27995) and the sandbox's init (27996) sit in poll and wait4 across the whole
    # window. Only the worker (27997), its thread and its child remain.
    assert {event.pid for event in all_events} == {27995, 27996, 27997, 27998, 27999}
    assert {event.pid for event in events} == {27997, 27998, 27999}
    assert [e.name for e in events if e.pid == 27999 and e.kind == "syscall"][-1] == "exit_group"


def test_it_drops_calls_of_processes_already_running_at_the_begin_marker():
    events = kept(
        "5 0.5 wait4(-1,  <unfinished ...>\n"
        "6 0.6 getpid() = 6\n"
        '1 1.0 access("/sysops-trace-begin", F_OK) = -1 ENOENT (No such file or directory)\n'
        "6 1.1 getppid() = 5\n"
        "1 1.2 getpid() = 1\n"
        "5 1.3 <... wait4 resumed>0x7ffc, 0, NULL) = 6\n"
        '1 1.4 access("/sysops-trace-end", F_OK) = -1 ENOENT (No such file or directory)\n'
    )
    assert [(event.pid, event.name) for event in events] == [(1, "getpid")]


def test_it_keeps_a_child_whose_calls_come_before_its_parents_clone_returns():
    events = kept(
        '1 1.0 access("/sysops-trace-begin", F_OK) = -1 ENOENT (No such file or directory)\n'
        "1 1.1 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>\n"
        "2 1.2 getpid() = 2\n"
        "1 1.3 <... clone resumed>) = 2\n"
        '1 1.4 access("/sysops-trace-end", F_OK) = -1 ENOENT (No such file or directory)\n'
        "2 1.5 exit_group(0) = ?\n"
    )
    assert [(event.pid, event.name) for event in events] == [(2, "getpid"), (1, "clone")]


@pytest.mark.parametrize(
    ("begin", "end"),
    [
        (
            'faccessat(AT_FDCWD, "/sysops-trace-begin", F_OK)',
            'faccessat(AT_FDCWD, "/sysops-trace-end", F_OK)',
        ),
        (
            'faccessat2(AT_FDCWD</w>, "/sysops-trace-begin", F_OK, 0)',
            'access("/sysops-trace-end", F_OK)',
        ),
    ],
)
def test_it_recognises_every_form_of_the_markers(begin, end):
    events = kept(
        f"1 1.0 {begin} = -1 ENOENT (No such file or directory)\n"
        "1 1.1 getpid() = 1\n"
        f"1 1.2 {end} = -1 ENOENT (No such file or directory)\n"
    )
    assert [event.name for event in events] == ["getpid"]


def test_it_ignores_other_paths_and_other_calls_naming_the_marker():
    events = parse_text(
        '1 1.0 access("/sysops-trace-beginning", F_OK) = -1 ENOENT (No such file or directory)\n'
        '1 1.1 openat(AT_FDCWD, "/sysops-trace-begin", O_RDONLY) = -1 ENOENT (No such file)\n'
    )
    assert [marker_of(event) for event in events] == [None, None]


def test_it_keeps_nothing_without_a_begin_marker():
    marker_filter = MarkerFilter()
    assert marker_filter.feed(parse_text(strace_text("attach"))) == []
    assert (marker_filter.began, marker_filter.ended) == (False, False)


def test_it_filters_batches_as_they_come_like_a_whole_trace():
    text = strace_text("sandboxed")
    parser = TraceParser()
    marker_filter = MarkerFilter()
    kept_live = []
    for start in range(0, len(text), 1000):
        kept_live += marker_filter.feed(parser.feed(text[start : start + 1000]))
    kept_live += marker_filter.feed(parser.close())
    assert kept_live == kept(text)
    assert (marker_filter.began, marker_filter.ended) == (True, True)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_it_sees_the_markers_that_mark_begin_and_mark_end_make(tmp_path):
    program = (
        "import os\n"
        "from sysops.tracing.markers import mark_begin, mark_end\n"
        "mark_begin()\n"
        "os.getppid()\n"
        "mark_end()\n"
    )
    output = tmp_path / "trace.strace"
    subprocess.run(
        ["strace", "-f", "-ttt", "-T", "-yy", "-o", str(output), sys.executable, "-c", program],
        cwd=REPO_ROOT,
        check=True,
        timeout=STRACE_TIMEOUT_S,
    )
    marker_filter = MarkerFilter()
    events = marker_filter.feed(parse_text(output.read_text()))
    assert (marker_filter.began, marker_filter.ended) == (True, True)
    assert [event.name for event in events] == ["getppid"]


def test_it_marks_the_harness_calls_of_a_thread_and_the_event_pipe_writes():
    text = (
        '1 1.0 access("/sysops-trace-begin", F_OK) = -1 ENOENT (No such file or directory)\n'
        "1 1.1 getppid() = 0\n"
        '1 1.2 access("/sysops-harness-begin", F_OK) = -1 ENOENT (No such file or directory)\n'
        '1 1.3 openat(AT_FDCWD, "/sys/x", O_RDONLY) = -1 ENOENT (No such file or directory)\n'
        "2 1.35 getpid() = 2\n"
        '1 1.4 access("/sysops-harness-end", F_OK) = -1 ENOENT (No such file or directory)\n'
        '1 1.5 write(3<pipe:[77]>, "{}\\n", 3) = 3\n'
        '1 1.6 write(4</dev/null>, "x", 1) = 1\n'
        '1 1.7 access("/sysops-trace-end", F_OK) = -1 ENOENT (No such file or directory)\n'
    )
    marker_filter = MarkerFilter(events_pipe="pipe:[77]")
    events = marker_filter.feed(parse_text(text))
    assert [(e.pid, e.name, e.harness) for e in events] == [
        (1, "getppid", False),
        (1, "openat", True),
        (2, "getpid", False),  # another thread is not in the harness
        (1, "write", True),
        (1, "write", False),
    ]


def test_calls_traced_only_for_the_markers_are_dropped():
    text = (
        '1 1.0 access("/sysops-trace-begin", F_OK) = -1 ENOENT (No such file or directory)\n'
        '1 1.1 access("/etc/passwd", R_OK) = 0\n'
        "1 1.2 socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3\n"
        '1 1.7 access("/sysops-trace-end", F_OK) = -1 ENOENT (No such file or directory)\n'
    )
    marker_filter = MarkerFilter(marker_only={"access", "faccessat", "faccessat2"})
    assert [e.name for e in marker_filter.feed(parse_text(text))] == ["socket"]
