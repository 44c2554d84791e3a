from __future__ import annotations

import os
from pathlib import Path

import pytest

from sysops.experiments.io_multiplexing import probe

from .harness import run_probe, run_probe_alone

PARAMS = {
    "mechanisms": ["select", "poll", "epoll_lt", "epoll_et"],
    "layers": ["native"],
    "counts": [10, 1000],
    "active": 0,
    "calls": 100,
}

pytestmark = pytest.mark.usefixtures("native_extension")


def _sweep_row(rows: dict, mechanism: str, count: int, layer: str = "native") -> dict:
    (found,) = [
        r
        for r in rows.values()
        if r.get("mechanism") == mechanism
        and r.get("descriptors") == count
        and r.get("layer") == layer
    ]
    return found


def _children() -> set[str]:
    return {
        pid
        for task in os.listdir("/proc/self/task")
        for pid in Path(f"/proc/self/task/{task}/children").read_text().split()
    }


def test_select_refuses_descriptor_1024_and_says_why() -> None:
    rows = run_probe(probe.run, {**PARAMS, "counts": [10]}).rows()

    python = rows["Python select.select on fd 1024"]
    assert python["value"] == "ValueError"
    assert "filedescriptor out of range in select()" in python["note"]
    assert "FD_SETSIZE = 1024" in python["note"]
    native = rows["C select on fd 1024"]
    assert native["value"] == "refused"
    assert "memory corruption, not a slow call" in native["note"]
    assert rows["FD_SETSIZE"]["value"] == 1024


def test_at_1000_idle_descriptors_select_costs_many_times_epoll() -> None:
    # In a process of its own, as in a worker: this test process holds enough descriptors to
    # push the 1,000th past 1023.
    rows = run_probe_alone(probe, {**PARAMS, "counts": [10, 1000]}).rows()

    select_ns = _sweep_row(rows, "select", 1000)["dist"]["median"]
    for mechanism in ("epoll_lt", "epoll_et"):
        epoll = _sweep_row(rows, mechanism, 1000)
        assert epoll["unit"] == "ns/call"
        assert epoll["dist"]["n"] == PARAMS["calls"]
        # Tens of times here; a wide margin for a busy host.
        assert select_ns > 5 * epoll["dist"]["median"], (select_ns, epoll)
    # poll pays per descriptor too; epoll does not.
    assert _sweep_row(rows, "poll", 1000)["value"] > 5 * _sweep_row(rows, "poll", 10)["value"]
    slope = rows["poll (C): cost per watched descriptor"]
    assert slope["value"] > 1 and slope["unit"] == "ns/descriptor"


def test_select_is_not_run_past_the_cliff() -> None:
    events = run_probe(
        probe.run,
        {**PARAMS, "mechanisms": ["select", "epoll_lt"], "counts": [10, 1100], "calls": 20},
    )

    select_xs = [s["x"] for s in events.samples("native_select")]
    assert select_xs == [10]
    assert [s["x"] for s in events.samples("native_epoll_lt")] == [10, 1100]
    cliff = events.rows()["select: the FD_SETSIZE cliff"]
    assert cliff["value"] == 1024
    assert "select ran up to 10 descriptors; not run at 1,100" in cliff["note"]


def test_ready_descriptors_are_reported_by_every_mechanism_and_layer() -> None:
    # Each wait is checked in the probe: a wrong count of ready descriptors fails the run.
    rows = run_probe(
        probe.run, {**PARAMS, "layers": ["native", "python"], "counts": [4, 50], "active": 4}
    ).rows()

    for mechanism in probe.MECHANISMS:
        python = _sweep_row(rows, mechanism, 50, layer="python")
        assert python["ratio_to_native"] > 0
        assert _sweep_row(rows, mechanism, 50)["ratio_to_native"] == 1


def test_an_edge_triggered_reader_that_does_not_drain_misses_data() -> None:
    rows = run_probe(probe.run, {**PARAMS, "counts": [1], "mechanisms": ["poll"]}).rows()

    assert rows["level-triggered: epoll_wait after a partial read"]["value"] == 1
    edge = rows["edge-triggered: epoll_wait after a partial read"]
    assert edge["value"] == 0
    assert "100 bytes still queued" in edge["note"]
    steps = {s["step"]: s for s in edge["detail"]["steps"]}
    assert edge["detail"]["panel"] == "iomux_trigger"
    assert steps["200 bytes arrive; epoll_wait"]["edge"] == 1
    assert steps["1 more byte arrives; epoll_wait"]["edge"] == 1
    assert steps["read until EAGAIN"]["edge"] == 101


@pytest.mark.parametrize(
    "bad",
    [
        {"counts": [0]},
        {"counts": [10_001]},
        {"counts": list(range(1, 10))},
        {"active": 11},  # more than the smallest count
        {"calls": 20_001},
        {"mechanisms": ["kqueue"]},
        {"counts": [10_000] * 1, "calls": 20_000, "layers": ["native", "python"]},
    ],
)
def test_it_refuses_params_out_of_bounds(bad: dict) -> None:
    with pytest.raises(ValueError):
        run_probe(probe.run, {**PARAMS, **bad})


def test_the_idle_pipes_cost_one_descriptor_here_and_their_holder_is_reaped() -> None:
    open_before = len(os.listdir("/proc/self/fd"))
    children_before = _children()
    events = run_probe(
        probe.run, {**PARAMS, "mechanisms": ["epoll_lt"], "counts": [3000], "active": 2}
    )

    assert _sweep_row(events.rows(), "epoll_lt", 3000)["dist"]["n"] == PARAMS["calls"]
    assert len(os.listdir("/proc/self/fd")) == open_before  # every pipe closed again
    assert _children() == children_before  # the write-end holder was reaped
    assert probe.fds_needed(10_000, probe.ACTIVE_MAX) < 2 * 10_000
