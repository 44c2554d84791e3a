"""The runner's reading of the worker's event stream: bad lines are values, never crashes."""

import json

import pytest

from sysops.agent.events import MAX_LINE_BYTES, BadLine, LineSplitter, parse_line


def test_it_parses_a_sample():
    event = parse_line(b'{"t": 1, "type": "sample", "series": "python", "x": 0, "y": 41.5}')
    assert event == {"t": 1, "type": "sample", "series": "python", "x": 0, "y": 41.5}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "malformed event"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "explode"}', "unknown event type 'explode'"),
        (b'{"type": "sample", "series": "a", "x": 1, "y": "NaN"}', "finite x and y"),
        (b'{"type": "sample", "series": "a", "x": 1, "y": NaN}', "finite x and y"),
        (b'{"type": "progress", "value": true}', "finite value"),
        (b'{"type": "result", "rows": {}}', "list of rows"),
        (b"\xff\xfe", "malformed event"),
    ],
)
def test_it_turns_bad_lines_into_reasons(line, reason):
    bad = parse_line(line)
    assert isinstance(bad, BadLine)
    assert reason in bad.reason


def test_it_splits_a_stream_at_newlines_across_reads():
    splitter = LineSplitter()
    assert splitter.feed(b'{"a": 1}\n{"b"') == [b'{"a": 1}']
    assert splitter.feed(b": 2}\n\n") == [b'{"b": 2}']
    assert splitter.feed(b'{"c": 3}') == []
    assert splitter.close() == [b'{"c": 3}']


def test_it_cuts_a_line_longer_than_the_cap():
    splitter = LineSplitter()
    lines = splitter.feed(b"x" * (MAX_LINE_BYTES + 10))
    assert len(lines) == 1
    assert isinstance(parse_line(lines[0]), BadLine)
    assert splitter.feed(json.dumps({"type": "done"}).encode() + b"\n") == [b'{"type": "done"}']
