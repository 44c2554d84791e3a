from __future__ import annotations

import os

import pytest

from sysops.experiments.descriptors import probe
from sysops.worker.toolkit import fds

from .harness import run_probe, run_probe_alone


def test_open_until_emfile_stops_at_the_configured_limit() -> None:
    before = set(fds.open_fds())

    events = run_probe(probe.run, {"scenario": "emfile", "nofile": 200})

    assert not events.of("error")
    rows = events.rows()
    refusal = rows["open() at the limit"]
    assert refusal["value"] == 24 and refusal["errno_name"] == "EMFILE"
    # The test process may hold descriptors numbered above 200, opened before the limit.
    assert rows["descriptors open when refused"]["below_limit"] == 200
    assert rows["highest descriptor number"]["value"] == 199
    counts = [s["y"] for s in events.samples("open_fds")]
    assert counts == sorted(counts)
    assert counts[-1] == rows["descriptors open when refused"]["value"]
    assert rows["open() refused at the limit"]["dist"]["n"] == probe.REFUSED_CALLS
    table = rows["descriptor table at the limit (one closed to list it)"]["detail"]
    assert table["panel"] == "fd_table"
    assert table["count"] == rows["descriptors open when refused"]["value"] - 1
    assert len(table["fds"]) == probe.FD_TABLE_ROWS_MAX
    assert table["omitted"] == table["count"] - probe.FD_TABLE_ROWS_MAX
    # Everything it opened is closed again.
    assert set(fds.open_fds()) == before


def test_a_leak_grows_the_table_while_closing_keeps_it_flat() -> None:
    events = run_probe(probe.run, {"scenario": "leak", "nofile": 1024, "count": 300})

    rows = events.rows()
    closed = [s["y"] for s in events.samples("closed")]
    leak = [s["y"] for s in events.samples("leak")]
    assert max(closed) - min(closed) <= 1
    assert leak[-1] - leak[0] >= 290
    after = rows["open descriptors after the leaking loop"]["value"]
    assert after - rows["open descriptors after the loop that closes"]["value"] == 300
    assert "the leak hit the limit" not in rows


def test_a_child_sees_the_fd_without_cloexec_and_not_the_one_with_it() -> None:
    events = run_probe(probe.run, {"scenario": "inherit", "nofile": 256})

    rows = events.rows()
    assert rows["child sees the fd opened without O_CLOEXEC"]["seen"] is True
    assert rows["child sees the fd opened with O_CLOEXEC"]["seen"] is False
    panel = rows["children's descriptor tables"]["detail"]
    plain, cloexec = panel["columns"]
    assert [plain["marker_fd"], plain["marker"]] in plain["fds"]
    assert all(target != cloexec["marker"] for _, target in cloexec["fds"])
    assert not os.path.exists(plain["marker"]) and not os.path.exists(cloexec["marker"])


@pytest.mark.parametrize("nofile", [64, 1024])
def test_dup_follows_the_lowest_free_number_rule(nofile: int) -> None:
    # In a process of its own, as in a worker: at a limit of 64, the descriptors this test
    # process holds (some 60 by the end of the suite) would leave the probe none to list its own.
    events = run_probe_alone(probe, {"scenario": "dup", "nofile": nofile})

    rows = events.rows()
    steps = [r for r in rows.values() if "holds" in r]
    assert len(steps) == 6
    assert all(r["holds"] for r in steps), [r["note"] for r in steps if not r["holds"]]
    assert rows[f"dup2(a, {nofile}) at RLIMIT_NOFILE"]["errno_name"] == "EBADF"


def test_it_refuses_a_limit_out_of_bounds() -> None:
    with pytest.raises(ValueError, match="nofile"):
        run_probe(probe.run, {"scenario": "emfile", "nofile": 10})
