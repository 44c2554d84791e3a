"""Exporters: strace text, NDJSON, Perfetto JSON and summary CSV, streamed in chunks."""

from __future__ import annotations

import csv
import io
import json
import types

import pytest

from sysops.tracing import export
from sysops.tracing.parse import parse_text
from sysops.tracing.summary import Summary
from tests.tracing.fixture_files import ALL_CAPTURES, strace_text


def without_identity(events):
    """Events as dicts minus what a re-parse legitimately renumbers or rewrites."""
    return [{k: v for k, v in e.to_dict().items() if k not in ("seq", "raw")} for e in events]


@pytest.mark.parametrize("name", ["workload", "killed", "strace_killed"])
def test_it_writes_strace_text_that_parses_back_to_the_same_events(name):
    events = parse_text(strace_text(name))
    text = "".join(export.to_strace_text(events))
    assert without_identity(parse_text(text)) == without_identity(events)


def test_it_writes_split_calls_as_one_line_and_unfinished_ones_as_strace_does():
    events = parse_text(
        "5 1.000000 read(3,  <unfinished ...>\n"
        "6 1.000001 getpid() = 6 <0.000001>\n"
        '5 1.000002 <... read resumed>"x", 1) = 1 <0.000002>\n'
        "5 1.000003 wait4(-1,  <unfinished ...>\n"
        "5 1.000004 +++ killed by SIGKILL (core dumped) +++\n"
    )
    assert "".join(export.to_strace_text(events)).splitlines() == [
        "6 1.000001 getpid() = 6 <0.000001>",
        '5 1.000000 read(3, "x", 1) = 1 <0.000002>',
        "5 1.000003 wait4(-1,  <unfinished ...>",
        "5 1.000004 +++ killed by SIGKILL (core dumped) +++",
    ]


def test_it_writes_one_json_event_per_line_and_accepts_stored_dicts():
    events = parse_text(strace_text("killed"))
    stored = [event.to_dict() for event in events]
    lines = "".join(export.to_ndjson(stored)).splitlines()
    assert [json.loads(line) for line in lines] == stored


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_it_writes_perfetto_json_with_a_complete_event_per_syscall_and_a_name_per_pid(name):
    events = parse_text(strace_text(name))
    document = json.loads("".join(export.to_perfetto(events)))
    assert document["displayTimeUnit"] == "ns"
    records = document["traceEvents"]
    syscalls = [e for e in events if e.kind == "syscall"]
    complete = [r for r in records if r["ph"] == "X"]
    assert len(complete) == len(syscalls)
    names = [r for r in records if r["ph"] == "M" and r["name"] == "process_name"]
    pids = {e.pid for e in events if e.kind not in ("info", "unparsed")}
    assert sorted(r["pid"] for r in names) == sorted(pids)
    instants = [r for r in records if r["ph"] == "i"]
    assert len(instants) == len([e for e in events if e.kind in ("signal", "exit", "killed")])


def test_it_puts_times_in_microseconds_and_the_call_in_the_perfetto_args():
    [event] = parse_text(
        '7 1700000000.250000 openat(AT_FDCWD</w>, "/nope", O_RDONLY) = -1 ENOENT (No such file'
        " or directory) <0.000125>\n"
    )
    records = json.loads("".join(export.to_perfetto([event], run_label="run 4")))["traceEvents"]
    assert records[0] == {
        "name": "process_name",
        "ph": "M",
        "pid": 7,
        "tid": 7,
        "args": {"name": "run 4 pid 7"},
    }
    call = records[1]
    assert (call["name"], call["cat"], call["pid"], call["tid"]) == ("openat", "file", 7, 7)
    assert call["ts"] == pytest.approx(1_700_000_000_250_000.0)
    assert call["dur"] == pytest.approx(125.0)
    assert call["args"]["args"] == ["AT_FDCWD</w>", '"/nope"', "O_RDONLY"]
    assert (call["args"]["errno"], call["args"]["errmsg"]) == (
        "ENOENT",
        "No such file or directory",
    )


def test_it_writes_the_summary_as_csv_with_a_header_and_a_row_per_syscall():
    summary = Summary()
    summary.add_all(parse_text(strace_text("workload")))
    rows = list(csv.reader(io.StringIO("".join(export.summary_csv(summary.to_dict())))))
    assert rows[0] == ["syscall", "calls", "errors", "total_s", "avg_s", "max_s", "share_pct"]
    assert [row[0] for row in rows[1:]] == [row.name for row in summary.rows()]
    assert sum(int(row[1]) for row in rows[1:]) == summary.total_calls


def test_it_streams_a_large_export_in_bounded_chunks():
    events = parse_text(strace_text("sandboxed")) * 40  # ~39,000 events
    for exporter in (export.to_strace_text, export.to_ndjson, export.to_perfetto):
        chunks = exporter(iter(events))
        assert isinstance(chunks, types.GeneratorType)
        sizes = [len(chunk) for chunk in chunks]
        assert len(sizes) > 10
        # A chunk closes at the first event that takes it past CHUNK_CHARS.
        assert max(sizes) < export.CHUNK_CHARS + 8 * 1024
