"""The examples in sysops.tracing's docstrings run and say what the code does."""

from __future__ import annotations

import doctest

import pytest

from sysops.tracing import categories, errnos, export, filter, markers, parse, summary


@pytest.mark.parametrize("module", [categories, errnos, export, filter, markers, parse, summary])
def test_it_keeps_its_docstring_examples_true(module):
    assert doctest.testmod(module).failed == 0
