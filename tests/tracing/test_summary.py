"""Summary: the strace -c table, built from parsed events, checked against strace itself."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from sysops.tracing.parse import parse_text
from sysops.tracing.summary import Summary
from tests.tracing.fixture_files import FIXTURES, strace_text

STRACE_TIMEOUT_S = 60
TRACE_OPTIONS = ["-f", "-ttt", "-T", "-yy", "-s", "64"]
# -T prints microseconds; strace -c -w adds up the unrounded nanoseconds, then prints the sum
# in microseconds too.
ROUNDING_S = 0.000001

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is missing")


def strace_c_table(text: str) -> dict[str, tuple[int, int, float]]:
    """{syscall: (calls, errors, seconds)} from strace's -c table."""
    lines = text[text.index("% time") :].splitlines()
    table: dict[str, tuple[int, int, float]] = {}
    for line in lines[2:]:
        if line.startswith("------"):
            break
        parts = line.split()
        errors = int(parts[4]) if len(parts) == 6 else 0
        table[parts[-1]] = (int(parts[3]), errors, float(parts[1]))
    return table


def summary_table(summary: Summary) -> dict[str, tuple[int, int]]:
    return {row.name: (row.calls, row.errors) for row in summary.rows()}


def python_under_strace(*strace_args: str, program: str, cwd) -> None:
    subprocess.run(
        ["strace", *strace_args, sys.executable, "-S", "-I", str(FIXTURES / program), str(cwd)],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=STRACE_TIMEOUT_S,
    )


@needs_strace
def test_it_counts_calls_and_errors_exactly_as_strace_c_does(tmp_path):
    # Two runs of a program that makes the same calls every time: one under strace -c -f, one
    # traced as the runner traces.
    python_under_strace(
        "-c", "-f", "-o", str(tmp_path / "c.txt"), program="countable.py", cwd=tmp_path
    )
    python_under_strace(
        *TRACE_OPTIONS, "-o", str(tmp_path / "t.strace"), program="countable.py", cwd=tmp_path
    )
    expected = strace_c_table((tmp_path / "c.txt").read_text())
    summary = Summary()
    summary.add_all(parse_text((tmp_path / "t.strace").read_text()))
    assert summary_table(summary) == {name: row[:2] for name, row in expected.items()}


@needs_strace
@pytest.mark.parametrize("program", ["workload.py", "killed.py"])
def test_it_matches_the_wall_clock_summary_of_the_same_run(tmp_path, program):
    # -C prints the trace and then the -c table; -w makes that table wall-clock time, the
    # same clock as -T. Same run, so even the threaded workload must agree exactly — and a
    # call killed mid-way (killed.py) and exit_group count in neither.
    output = tmp_path / "trace.strace"
    python_under_strace(
        "-C", "-w", *TRACE_OPTIONS, "-o", str(output), program=program, cwd=tmp_path
    )
    text = output.read_text()
    trace, table = text[: text.index("% time")], strace_c_table(text)
    summary = Summary()
    summary.add_all(parse_text(trace))
    assert summary_table(summary) == {name: row[:2] for name, row in table.items()}
    for name, (calls, _errors, seconds) in table.items():
        assert summary.stats(name).total_s == pytest.approx(
            seconds, abs=(calls + 1) * ROUNDING_S
        ), name


def test_it_sorts_rows_by_time_then_calls_and_shares_the_total():
    summary = Summary()
    summary.add_all(
        parse_text(
            '1 1.0 read(3, "", 1) = 0 <0.000300>\n'
            '1 1.1 read(3, "", 1) = -1 EAGAIN (Resource temporarily unavailable) <0.000100>\n'
            "1 1.2 close(3) = 0 <0.000350>\n"
            "1 1.3 getpid() = 1 <0.000000>\n"
            "1 1.4 getppid() = 0 <0.000000>\n"
            "1 1.5 getppid() = 0 <0.000000>\n"
            "1 1.6 exit_group(0) = ?\n"
            "1 1.7 +++ exited with 0 +++\n"
        )
    )
    rows = summary.rows()
    assert [(r.name, r.calls, r.errors) for r in rows] == [
        ("read", 2, 1),
        ("close", 1, 0),
        ("getppid", 2, 0),
        ("getpid", 1, 0),
    ]
    read = rows[0]
    assert (read.total_s, read.avg_s, read.max_s) == pytest.approx((0.0004, 0.0002, 0.0003))
    assert read.share_pct == pytest.approx(100 * 0.0004 / 0.00075)
    assert sum(row.share_pct for row in rows) == pytest.approx(100.0)
    assert summary.to_dict()["total"] == {
        "calls": 6,
        "errors": 1,
        "total_s": pytest.approx(0.00075),
    }


def test_it_merges_summaries_of_batches_into_the_summary_of_the_whole():
    events = parse_text(strace_text("sandboxed"))
    whole = Summary()
    whole.add_all(events)
    merged = Summary()
    for start in range(0, len(events), 100):
        batch = Summary()
        batch.add_all(events[start : start + 100])
        merged.merge(batch)
    assert summary_table(merged) == summary_table(whole)
    for row in whole.rows():
        theirs = merged.stats(row.name)
        assert (theirs.max_s, theirs.total_s) == pytest.approx((row.max_s, row.total_s))
