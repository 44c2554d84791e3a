"""TraceParser line by line: prefixes, return values, halves of calls, signals, exits, notes."""

from __future__ import annotations

import pytest

from sysops.tracing.parse import TraceEvent, TraceParser, parse_text


def one(line: str) -> TraceEvent:
    events = parse_text(line + "\n")
    assert len(events) == 1, events
    return events[0]


def test_it_reads_pid_timestamp_and_duration():
    event = one("4242  1700000000.123456 getpid() = 4242 <0.000012>")
    assert (event.pid, event.ts, event.duration_s) == (4242, 1700000000.123456, 0.000012)
    assert (event.kind, event.name, event.args, event.retval) == ("syscall", "getpid", [], 4242)


def test_it_reads_the_bracketed_pid_prefix_of_stderr_output():
    event = one("[pid   77] 1700000000.5 close(3) = 0 <0.000001>")
    assert (event.pid, event.name, event.retval) == (77, "close", 0)


def test_it_reads_lines_without_pid_or_timestamp():
    event = one("brk(NULL)                               = 0x55d7c2a8d000")
    assert (event.pid, event.ts, event.duration_s) == (None, None, None)
    assert event.retval == 0x55D7C2A8D000


def test_it_turns_wall_clock_timestamps_into_seconds_since_midnight():
    assert one("7 01:02:03.250000 getpid() = 7").ts == 3723.25


@pytest.mark.parametrize(
    ("ret_text", "ret", "retval", "errno", "errmsg"),
    [
        ("0", "0", 0, None, None),
        (
            "-1 ENOENT (No such file or directory)",
            "-1 ENOENT (No such file or directory)",
            -1,
            "ENOENT",
            "No such file or directory",
        ),
        (
            "? ERESTARTSYS (To be restarted if SA_RESTART is set)",
            "? ERESTARTSYS (To be restarted if SA_RESTART is set)",
            None,
            "ERESTARTSYS",
            "To be restarted if SA_RESTART is set",
        ),
        ("0x7f3a1c000000", "0x7f3a1c000000", 0x7F3A1C000000, None, None),
        ("0 (Timeout)", "0 (Timeout)", 0, None, None),
        ("1 ([{fd=4, revents=POLLIN}])", "1 ([{fd=4, revents=POLLIN}])", 1, None, None),
        (
            "0x8002 (flags O_RDWR|O_LARGEFILE)",
            "0x8002 (flags O_RDWR|O_LARGEFILE)",
            0x8002,
            None,
            None,
        ),
    ],
)
def test_it_reads_return_values(ret_text, ret, retval, errno, errmsg):
    event = one(f"9 1.0 call(1) = {ret_text} <0.000003>")
    assert (event.ret, event.retval, event.errno, event.errmsg) == (ret, retval, errno, errmsg)
    assert event.duration_s == 0.000003


def test_it_keeps_the_raw_and_the_path_of_a_decorated_returned_fd():
    event = one('9 1.0 openat(AT_FDCWD</work>, "/dev/null", O_RDONLY) = 3</dev/null<char 1:3>>')
    assert event.ret == "3</dev/null<char 1:3>>"
    assert event.retval == 3
    assert event.fd_paths == {0: "/work", "ret": "/dev/null"}


def test_it_decodes_escaped_bytes_in_decorated_paths():
    # strace escapes '<', '>' and non-ASCII bytes of -yy paths in octal.
    event = one(r"9 1.0 close(3</tmp/\303\274n\303\257 a\76b>) = 0")
    assert event.fd_paths == {0: "/tmp/ünï a>b"}


def test_it_marks_calls_that_returned_nothing_as_cut_short_but_not_exits():
    assert one("9 1.0 read(3,  <unfinished ...>) = ?").cut_short
    assert one("9 1.0 futex(0x1, FUTEX_WAIT, 0, NULL) = ?").cut_short
    assert not one("9 1.0 exit_group(0) = ?").cut_short
    assert not one("9 1.0 exit(0) = ?").cut_short


def test_it_merges_halves_across_interleaved_processes():
    text = (
        "1 1.000000 wait4(-1,  <unfinished ...>\n"
        '2 1.000100 write(1, "hi", 2 <unfinished ...>\n'
        "3 1.000150 getpid() = 3 <0.000001>\n"
        "2 1.000200 <... write resumed>) = 2 <0.000100>\n"
        "2 1.000300 exit_group(0) = ?\n"
        "2 1.000400 +++ exited with 0 +++\n"
        "1 1.000500 <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 2"
        " <0.000500>\n"
    )
    events = parse_text(text)
    assert [(e.pid, e.kind, e.name) for e in events] == [
        (3, "syscall", "getpid"),
        (2, "syscall", "write"),
        (2, "syscall", "exit_group"),
        (2, "exit", "exit"),
        (1, "syscall", "wait4"),
    ]
    write, wait4 = events[1], events[4]
    assert (write.args, write.retval, write.ts, write.duration_s) == (
        ["1", '"hi"', "2"],
        2,
        1.0001,
        0.0001,
    )
    assert wait4.args == ["-1", "[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]", "0", "NULL"]
    assert (wait4.ts, wait4.duration_s, wait4.retval) == (1.0, 0.0005, 2)
    assert wait4.raw.splitlines() == [text.splitlines()[0], text.splitlines()[-1]]


def test_it_merges_a_call_split_inside_a_structure():
    events = parse_text(
        '5 1.0 ioctl(5, SIOCGIFINDEX, {ifr_name="lo" <unfinished ...>\n'
        "6 1.1 getpid() = 6\n"
        "5 1.2 <... ioctl resumed>, ifr_ifindex=1}) = 0 <0.000042>\n"
    )
    assert events[1].args == ["5", "SIOCGIFINDEX", '{ifr_name="lo", ifr_ifindex=1}']


def test_it_merges_a_clone3_split_between_its_struct_and_the_changed_struct():
    # As strace 6.1 printed it in an earlier capture of the sandboxed workload.
    events = parse_text(
        "10 1.0 clone3({flags=CLONE_VM|CLONE_THREAD, child_tid=0x7f83, exit_signal=0,"
        " stack=0x7f83, stack_size=0x7fff80} <unfinished ...>\n"
        "11 1.1 rt_sigprocmask(SIG_SETMASK, [], NULL, 8) = 0 <0.000001>\n"
        "10 1.2 <... clone3 resumed> => {parent_tid=[3]}, 88) = 3 <0.000098>\n"
    )
    assert events[1].args == [
        "{flags=CLONE_VM|CLONE_THREAD, child_tid=0x7f83, exit_signal=0, stack=0x7f83,"
        " stack_size=0x7fff80} => {parent_tid=[3]}",
        "88",
    ]


def test_it_keeps_a_resumed_half_whose_first_half_it_never_saw():
    event = one('5 2.0 <... read resumed>"x", 1) = 1 <0.5>')
    assert (event.name, event.args, event.retval, event.cut_short) == (
        "read",
        ['"x"', "1"],
        1,
        False,
    )


def test_it_cuts_short_an_unfinished_call_when_its_process_is_killed():
    events = parse_text("5 1.0 read(3</p>,  <unfinished ...>\n5 2.0 +++ killed by SIGKILL +++\n")
    read, killed = events
    assert (read.name, read.args, read.ret, read.cut_short) == ("read", ["3</p>"], None, True)
    assert read.fd_paths == {0: "/p"}
    assert (killed.kind, killed.name, killed.args, killed.cut_short) == (
        "killed",
        "SIGKILL",
        [],
        True,
    )


def test_it_notes_a_core_dump():
    event = one("5 2.0 +++ killed by SIGSEGV (core dumped) +++")
    assert (event.kind, event.name, event.args) == ("killed", "SIGSEGV", ["core dumped"])


def test_it_reads_exit_status():
    event = one("5 2.0 +++ exited with 42 +++")
    assert (event.kind, event.retval, event.category) == ("exit", 42, "process")


def test_it_reads_signals_and_group_stops():
    signal = one("5 2.0 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=6} ---")
    assert (signal.kind, signal.name, signal.args) == (
        "signal",
        "SIGCHLD",
        ["{si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=6}"],
    )
    stop = one("5 2.1 --- stopped by SIGSTOP ---")
    assert (stop.kind, stop.name, stop.args) == ("signal", "SIGSTOP", ["stopped"])


@pytest.mark.parametrize(
    "line",
    [
        "strace: Process 123 attached",
        "123 strace: Process 123 attached",
        "[pid 9] strace: Process 123 attached",
    ],
)
def test_it_reads_process_notes_with_or_without_a_prefix(line):
    event = one(line)
    assert (event.kind, event.name, event.pid) == ("info", "attached", 123)


def test_it_passes_other_strace_messages_on_as_notes():
    event = one("strace: [ Process PID=5 runs in x32 mode. ]")
    assert (event.kind, event.name, event.args) == (
        "info",
        "strace",
        ["[ Process PID=5 runs in x32 mode. ]"],
    )


def test_it_moves_a_call_to_the_leader_when_a_thread_execs():
    events = parse_text(
        '11 1.0 execve("/bin/true", ["true"], 0x7ff /* 3 vars */ <unfinished ...>\n'
        "10 1.1 +++ superseded by execve in pid 11 +++\n"
        "10 1.2 <... execve resumed>) = 0 <0.000200>\n"
    )
    assert [(e.pid, e.kind, e.name) for e in events] == [
        (10, "info", "superseded"),
        (10, "syscall", "execve"),
    ]
    assert (events[1].retval, events[1].cut_short) == (0, False)


@pytest.mark.parametrize(
    "line",
    [
        "this is not strace output",
        "5 1.0 read(3, 4",
        "5 1.0 <... read resumed",
        "5 1.0 +++ something new +++",
        "5 1.0 --- not a signal ---",
        "% time     seconds  usecs/call     calls    errors syscall",
    ],
)
def test_it_turns_lines_it_cannot_read_into_unparsed_events(line):
    event = one(line)
    assert (event.kind, event.raw) == ("unparsed", line)


def test_it_keeps_a_partial_line_until_the_rest_arrives():
    parser = TraceParser()
    assert parser.feed("5 1.0 getpid() = ") == []
    [event] = parser.feed("5 <0.000001>\n")
    assert (event.name, event.retval) == ("getpid", 5)


def test_it_flushes_a_half_written_last_line_and_open_calls_at_close():
    parser = TraceParser()
    assert parser.feed("5 1.0 wait4(-1,  <unfinished ...>\n6 1.1 read(0, ") == []
    flushed = parser.close()
    assert [(e.pid, e.name, e.args, e.cut_short) for e in flushed] == [
        (6, "read", ["0"], True),
        (5, "wait4", ["-1"], True),
    ]


def test_it_round_trips_events_through_dicts():
    event = one('9 1.0 openat(AT_FDCWD</w>, "x", O_RDONLY) = 3</w/x> <0.000002>')
    assert TraceEvent.from_dict(event.to_dict()) == event
    assert event.to_dict()["fd_paths"] == {"0": "/w", "ret": "/w/x"}
