from __future__ import annotations

import errno

import pytest

from sysops.worker.toolkit import params
from sysops.worker.toolkit.rows import dist_row, errno_fields, errno_row, row, with_ratios
from sysops.worker.toolkit.sweep import change_point, fit_line, slope_row_fields, sweep
from tests.probes.harness import run_probe


@pytest.mark.parametrize("value", [0, 11, 5.0, True, "5", None])
def test_bounded_int_refuses_what_is_out_of_bounds_or_not_an_int(value) -> None:
    with pytest.raises(ValueError, match="count must be an integer in 1..10"):
        params.bounded_int({"count": value}, "count", 1, 10)


def test_bounded_values_and_defaults() -> None:
    assert params.bounded_int({}, "count", 1, 10, default=3) == 3
    assert params.bounded_float({"s": 2}, "s", 0.5, 60) == 2.0
    with pytest.raises(ValueError, match="required"):
        params.bounded_int({}, "count", 1, 10)


def test_subset_keeps_canonical_order_without_repeats() -> None:
    options = ("select", "poll", "epoll")
    assert params.subset({"m": ["epoll", "select", "epoll"]}, "m", options) == ["select", "epoll"]
    for bad in ([], ["kqueue"], "epoll"):
        with pytest.raises(ValueError):
            params.subset({"m": bad}, "m", options)


def test_int_list_sorts_and_bounds_sweep_points() -> None:
    assert params.int_list({"n": [100, 1, 10, 10]}, "n", 1, 10_000, 8) == [1, 10, 100]
    with pytest.raises(ValueError):
        params.int_list({"n": [1, 20_000]}, "n", 1, 10_000, 8)


def test_a_timing_row_carries_its_median_distribution_and_layer() -> None:
    out = dist_row("getppid", [3.0, 1.0, 2.0], "ns/call", "n", layer="native")
    assert out["value"] == 2.0
    assert out["dist"] == {
        "n": 3,
        "min": 1.0,
        "median": 2.0,
        "p99": None,
        "max": 3.0,
        "stdev": 1.0,
    }
    assert out["layer"] == "native" and out["unit"] == "ns/call"


def test_ratios_are_against_the_native_row_only_when_it_was_measured() -> None:
    rows = [row("a", 10.0, "ns", layer="python"), row("b", 5.0, "ns", layer="native")]
    assert [r["ratio_to_native"] for r in with_ratios(rows)] == [2.0, 1.0]
    lonely = [row("a", 10.0, "ns", layer="python")]
    assert "ratio_to_native" not in with_ratios(lonely)[0]


def test_errno_rows_name_the_refusal() -> None:
    assert errno_fields(OSError(errno.EMFILE, "x")) == {
        "errno": errno.EMFILE,
        "name": "EMFILE",
        "message": "Too many open files",
    }
    assert errno_row("open", errno.EBADF)["note"].startswith("EBADF (Bad file descriptor)")
    assert errno_row("open", 0)["note"] == "ok"


def test_fit_line_recovers_a_known_slope() -> None:
    fit = fit_line([0, 64, 128, 256], [100 + 0.06 * x for x in (0, 64, 128, 256)])
    assert fit.slope == pytest.approx(0.06) and fit.intercept == pytest.approx(100)
    assert fit.r2 == pytest.approx(1.0)
    assert slope_row_fields([(0, 1.0), (1, 3.0)])["slope"] == 2.0
    with pytest.raises(ValueError):
        fit_line([1, 1], [2, 3])


def test_change_point_finds_the_knee() -> None:
    xs = [1, 10, 100, 1_000, 10_000]
    assert change_point(xs, [5, 5, 5, 400, 4_000], log_x=True) == 100
    assert change_point(xs[:3], [1, 2, 3]) is None


def test_a_sweep_draws_nothing_where_a_variant_cannot_run() -> None:
    curves = {}

    def probe(params, emit) -> None:
        # "narrow" cannot run past 100, as select cannot past FD_SETSIZE.
        curves.update(
            sweep(
                [10, 100, 1000],
                ["narrow", "wide"],
                lambda name, x: None if name == "narrow" and x > 100 else x * 2,
                emit,
            )
        )

    events = run_probe(probe, {})

    assert curves == {
        "narrow": [(10, 20), (100, 200)],
        "wide": [(10, 20), (100, 200), (1000, 2000)],
    }
    assert [s["x"] for s in events.samples("narrow")] == [10, 100]
    assert [s["x"] for s in events.samples("wide")] == [10, 100, 1000]
    assert events.of("progress")[-1]["value"] == 1
