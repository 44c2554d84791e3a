"""The stored record of an event is its dict without the raw line, however it is built."""

from __future__ import annotations

import pytest

from sysops.tracing.parse import parse_text
from sysops.tracing.render import stored_record
from tests.tracing.fixture_files import ALL_CAPTURES, strace_text


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_stored_record_is_to_dict_without_raw(name):
    events = parse_text(strace_text(name))
    events[0].harness = True
    for event in events:
        expected = event.to_dict()
        del expected["raw"]
        assert stored_record(event) == expected
