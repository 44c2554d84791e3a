"""TraceParser against real strace 6.1 captures: exact expected events, whatever the chunking."""

from __future__ import annotations

import pytest

from sysops.tracing.parse import TraceEvent, TraceParser, parse_text
from tests.tracing.fixture_files import ALL_CAPTURES, expected_events, strace_text


def parse_in_chunks(text: str, chunk_chars: int) -> list[TraceEvent]:
    parser = TraceParser()
    events: list[TraceEvent] = []
    for start in range(0, len(text), chunk_chars):
        events += parser.feed(text[start : start + chunk_chars])
    return events + parser.close()


def find(events: list[TraceEvent], pid: int, name: str, nth: int = 0) -> TraceEvent:
    matches = [event for event in events if event.pid == pid and event.name == name]
    return matches[nth]


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_it_parses_each_capture_into_exactly_the_golden_events(name):
    events = parse_text(strace_text(name))
    assert [event.to_dict() for event in events] == expected_events(name)


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_it_understands_every_line_of_real_output(name):
    assert [event.raw for event in parse_text(strace_text(name)) if event.kind == "unparsed"] == []


@pytest.mark.parametrize("name", ALL_CAPTURES)
@pytest.mark.parametrize("chunk_chars", [1, 7, 4096])
def test_it_gives_the_same_events_whatever_the_chunk_size(name, chunk_chars):
    text = strace_text(name)
    assert parse_in_chunks(text, chunk_chars) == parse_text(text)


def test_it_numbers_events_in_output_order():
    events = parse_text(strace_text("sandboxed"))
    assert [event.seq for event in events] == list(range(1, len(events) + 1))


# The events below were checked by hand against their raw lines in the .strace files.


def test_it_reads_a_failed_connect_with_its_errno_and_decorated_socket():
    connect = find(parse_text(strace_text("workload")), 27490, "connect")
    assert connect.args == [
        "3<TCP:[107832]>",
        '{sa_family=AF_INET, sin_port=htons(40457), sin_addr=inet_addr("127.0.0.1")}',
        "16",
    ]
    assert (connect.retval, connect.errno, connect.errmsg) == (
        -1,
        "ECONNREFUSED",
        "Connection refused",
    )
    assert connect.fd_paths == {0: "TCP:[107832]"}
    assert connect.duration_s == 0.000062
    assert connect.category == "network"


def test_it_keeps_commas_inside_decorated_paths_and_escaped_strings():
    write = find(parse_text(strace_text("workload")), 27490, "write")
    assert write.args[0] == "3</tmp/sysops-fixture-wsdd2o0z/data, with comma.bin>"
    assert write.args[1].startswith('"hello, \\"strace\\"\\nhello')
    assert write.args[1].endswith('"...')
    assert write.args[2] == "128"
    assert write.fd_paths == {0: "/tmp/sysops-fixture-wsdd2o0z/data, with comma.bin"}


def test_it_splits_epoll_and_poll_structures_only_at_top_level():
    events = parse_text(strace_text("workload"))
    epoll_ctl = find(events, 27490, "epoll_ctl")
    assert epoll_ctl.args[1:3] == ["EPOLL_CTL_ADD", "3<UNIX-STREAM:[107836->107837]>"]
    assert epoll_ctl.fd_paths == {
        0: "anon_inode:[eventpoll]",
        2: "UNIX-STREAM:[107836->107837]",
    }
    ready = find(events, 27490, "epoll_wait", nth=1)
    assert ready.args[1].startswith("[{events=EPOLLIN, data={u32=3, u64=")
    assert ready.retval == 1
    poll = find(events, 27490, "poll")
    assert poll.args == ["[{fd=3<UNIX-STREAM:[107836->107837]>, events=POLLIN}]", "1", "0"]
    assert (poll.ret, poll.retval) == ("0 (Timeout)", 0)


def test_it_merges_a_call_split_inside_a_structure():
    # bwrap's set-up (pid 27996) was interrupted in the middle of the ifreq struct.
    ioctl = find(parse_text(strace_text("sandboxed")), 27996, "ioctl")
    assert ioctl.args == ["5<UNIX:[111581]>", "SIOCGIFINDEX", '{ifr_name="lo", ifr_ifindex=1}']
    assert (ioctl.ts, ioctl.retval, ioctl.duration_s) == (1795745799.982662, 0, 0.000045)
    assert ioctl.raw.count("\n") == 1


def test_it_reports_the_namespace_pid_that_clone3_returned_inside_the_sandbox():
    clone3 = find(parse_text(strace_text("sandboxed")), 27997, "clone3")
    assert clone3.args[0].startswith("{flags=CLONE_VM|")
    assert clone3.args[0].endswith("} => {parent_tid=[3]}")
    assert clone3.args[1] == "88"
    assert clone3.retval == 3  # the sandbox's pid namespace: the host calls this thread 27998


def test_it_merges_calls_resumed_after_other_processes_lines():
    events = parse_text(strace_text("workload"))
    parent_read = find(events, 27490, "read", nth=-1)
    assert parent_read.args == ["3<pipe:[107843]>", '"from child"', "64"]
    assert parent_read.retval == 10
    assert parent_read.ts == 1795745786.254543  # the start, from the first half
    assert parent_read.duration_s == 0.000642  # the whole call, from the second half


def test_it_records_the_childs_calls_under_the_childs_pid():
    events = parse_text(strace_text("workload"))
    child = [event for event in events if event.pid == 27494]
    assert [event.name for event in child if event.kind == "syscall"] == [
        "set_robust_list",
        "gettid",
        "close",
        "write",
        "getppid",
        "exit_group",
    ]
    assert (child[-1].kind, child[-1].retval) == ("exit", 3)
    exit_group = child[-2]
    assert (exit_group.ret, exit_group.retval, exit_group.cut_short) == ("?", None, False)


def test_it_reads_a_signal_with_its_siginfo():
    sigchld = next(e for e in parse_text(strace_text("workload")) if e.kind == "signal")
    assert (sigchld.pid, sigchld.name, sigchld.category) == (27490, "SIGCHLD", "signal")
    assert sigchld.args == [
        "{si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=27494, si_uid=0, si_status=3, "
        "si_utime=0, si_stime=0}"
    ]


def test_it_cuts_short_the_read_of_a_child_killed_inside_it():
    events = parse_text(strace_text("killed"))
    child = [event for event in events if event.pid == 25285]
    read, killed = child[-2], child[-1]
    assert (read.name, read.args, read.ret, read.cut_short) == (
        "read",
        ["3<pipe:[99244]>"],
        "?",
        True,
    )
    assert read.raw.splitlines()[1].endswith("<... read resumed> <unfinished ...>) = ?")
    assert (killed.kind, killed.name, killed.args, killed.cut_short) == (
        "killed",
        "SIGKILL",
        [],
        True,
    )
    wait4 = find(events, 25284, "wait4")
    assert wait4.args[1] == "[{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}]"


def test_it_flushes_the_half_written_last_line_of_a_killed_strace_as_cut_short():
    last = parse_text(strace_text("strace_killed"))[-1]
    assert (last.name, last.ret, last.cut_short) == ("clock_nanosleep", None, True)
    assert last.args == ["CLOCK_MONOTONIC", "TIMER_ABSTIME", "{tv_sec=1333, tv_nsec=268627574}"]


def test_it_reads_attach_notes_pid_brackets_and_detached_calls_from_stderr_output():
    events = parse_text(strace_text("attach"))
    first = events[0]
    assert (first.kind, first.name, first.pid, first.ts) == ("info", "attached", 25311, None)
    assert first.args == ["Process 25311 attached with 2 threads"]
    assert {event.pid for event in events} == {25311, 25312}
    detached_call = events[-2]
    assert (detached_call.pid, detached_call.name, detached_call.cut_short) == (
        25312,
        "clock_nanosleep",
        True,
    )
    assert detached_call.raw.endswith("\n <detached ...>")
    notes = [(event.name, event.pid) for event in events if event.kind == "info"]
    assert notes == [("attached", 25311), ("detached", 25311), ("detached", 25312)]
