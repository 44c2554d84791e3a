"""The search's shortcuts never hide a match: on every event of the real captures, any piece of
its rendered line finds it, through the chunk index, the stored-JSON scan and the event test."""

import zlib

import pytest

from sysops.models import TraceChunk
from sysops.tracing.parse import parse_text
from sysops.tracing.render import call_text, stored_record
from sysops.tracing.search import TraceQuery, chunk_index
from tests.tracing.fixture_files import ALL_CAPTURES, strace_text


def pieces(line: str) -> set[str]:
    """Substrings of a line that cross its fields' boundaries and a few long ones."""
    out = {line}
    for width in (3, 7, 12, 25):
        out.update(line[i : i + width] for i in range(0, max(1, len(line) - width + 1), 5))
    return {p for p in out if p.strip()}


@pytest.mark.parametrize("capture", ALL_CAPTURES)
def test_any_piece_of_a_rendered_line_finds_its_event(capture):
    events = parse_text(strace_text(capture))
    index = chunk_index(events)
    records = [stored_record(e) for e in events]
    checked = 0
    for event, record in zip(events, records, strict=True):
        line = call_text(event)
        if not line or event.kind in ("unparsed", "info"):
            continue  # not stored with its raw text: nothing to find
        # The event between two others, as a chunk stores it.
        neighbours = [records[0], record, records[-1]]
        stored_json = zlib.decompress(TraceChunk.pack(neighbours))
        for piece in pieces(line):
            query = TraceQuery(
                text=piece,
                syscall=event.name,
                category=event.category,
                pid=event.pid,
                failed=bool(event.errno or event.cut_short),
            )
            assert query.may_match(index), (piece, line)
            assert 1 in dict(query.candidates(stored_json, 3, index)), (piece, line)
            assert query.matches(record), (piece, line)
            checked += 1
    assert checked > 100


def test_a_query_rules_out_what_a_chunk_lacks():
    events = parse_text(strace_text("workload"))
    index = chunk_index(events)
    assert not TraceQuery(syscall="no_such_call").may_match(index)
    assert not TraceQuery(pid=-5).may_match(index)
    assert not TraceQuery(ts_to=index["ts"][0] - 1).may_match(index)
    assert not TraceQuery(ts_from=index["ts"][1] + 1).may_match(index)
    assert TraceQuery(name="open").may_match(index)
    stored_json = b'[{"seq":1,"name":"getppid","args":[]},{"seq":2,"name":"openat","args":[]}]'
    assert [i for i, _ in TraceQuery(text="openat(").candidates(stored_json, 2)] == [1]
    assert [i for i, _ in TraceQuery(syscall="getppid").candidates(stored_json, 2)] == [0]
    assert [i for i, _ in TraceQuery(syscall="read").candidates(stored_json, 2)] == []
    # Words call_text writes itself are not looked for in the stored JSON.
    assert len(list(TraceQuery(text="exited with").candidates(stored_json, 2))) == 2
    assert len(list(TraceQuery(text="<unfinished").candidates(stored_json, 2))) == 2


def test_the_workers_own_calls_are_left_out_unless_asked_for():
    harness = {"name": "write", "args": [], "harness": True}
    experiment = {"name": "write", "args": []}
    assert not TraceQuery().matches(harness)
    assert TraceQuery(harness=True).matches(harness)
    assert TraceQuery().matches(experiment)
