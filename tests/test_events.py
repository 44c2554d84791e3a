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
        (b'{"type": "sample", "series": "a", "x": 1, "y": "NaN"}', "y must be a finite number"),
        (b'{"type": "sample", "series": "a", "x": 1, "y": NaN}', "y must be a finite number"),
        (b'{"type": "progress", "value": true}', "value must be a finite number"),
        (b'{"type": "result", "rows": {}}', "rows must be a list"),
        (b"\xff\xfe", "malformed event"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"type": "hello", "host": {"kernel": [1]}}', "host.kernel must be an object"),
        (b'{"type": "hello", "host": {"hostname": ["a"]}}', "host.hostname must be a string"),
        (b'{"type": "hello", "host": {"shell": "/bin/sh"}}', "host has unknown keys 'shell'"),
        (b'{"type": "done", "work_ns": -1}', "work_ns must be a non-negative integer"),
        (b'{"type": "log", "message": "x", "extra": 1}', "unknown keys 'extra'"),
    ],
)
def test_it_turns_bad_lines_into_reasons(line, reason):
    bad = parse_line(line)
    assert isinstance(bad, BadLine)
    assert reason in bad.reason


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"type": "result", "rows": ["x", 1]}', "row 0 is not an object"),
        (b'{"type": "result", "rows": [{"value": 1}]}', "row 0 metric must be a str"),
        (b'{"type": "result", "rows": [{"metric": "m", "Bad Key": 1}]}', "not a lower-case name"),
        (b'{"type": "result", "rows": [{"metric": "m", "dist": [1]}]}', "dist must be an object"),
        (
            b'{"type": "result", "rows": [{"metric": "m", "value": '
            + b"[" * 50
            + b"]" * 50
            + b"}]}",
            "nested more than",
        ),
    ],
)
def test_it_drops_a_bad_row_and_keeps_the_others(line, reason):
    good = b'{"metric": "kept", "value": 1}'
    event = parse_line(line.replace(b'"rows": [', b'"rows": [' + good + b", ", 1))

    assert [row["metric"] for row in event["rows"]] == ["kept"]
    (rejected,) = event["rejected"][:1]
    assert reason.replace("row 0", "row 1") in rejected


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


def test_it_fills_in_every_host_field_so_pages_can_render_a_partial_fingerprint():
    event = parse_line(b'{"type": "hello", "host": {"hostname": "h", "cores": {"online": 2}}}')

    assert event["host"]["hostname"] == "h"
    assert event["host"]["cores"] == {"online": 2, "usable": None}
    assert event["host"]["kernel"] == {"release": None, "version": None}
    assert event["host"]["mitigations"] is None


def test_it_keeps_an_experiments_own_row_fields_and_types_the_contracts():
    line = json.dumps(
        {
            "type": "result",
            "rows": [
                {
                    "metric": "m",
                    "value": [1, "two"],
                    "unit": "ns",
                    "dist": {"n": 3, "median": 1.5},
                    "detail": {"errno": 24, "name": "EMFILE"},
                }
            ],
        }
    ).encode()

    assert parse_line(line)["rejected"] == []
    assert parse_line(line)["rows"] == [
        {
            "metric": "m",
            "value": [1, "two"],
            "unit": "ns",
            "note": "",
            "dist": {"n": 3, "median": 1.5},
            "detail": {"errno": 24, "name": "EMFILE"},
        }
    ]


def test_it_replaces_what_no_database_stores_as_text():
    event = parse_line(b'{"type": "log", "message": "a\\u0000b\\ud800c"}')

    assert event["message"] == "a\ufffdb?c"
