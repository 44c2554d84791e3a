"""What the results table says about a distribution: no percentile the sample count cannot
support, a spread beside the median, a "× native" column only where some row has a ratio.
Rows come from the real toolkit, as probes make them."""

from django.template.loader import render_to_string

from sysops.models import Run
from sysops.templatetags.sysops_tags import spread_text, tail_text
from sysops.worker.toolkit.rows import dist_row, row, with_ratios


def table(rows: list[dict]) -> str:
    run = Run(experiment="syscall-cost", params={}, status=Run.Status.SUCCEEDED, results=rows)
    return render_to_string("sysops/_run_results.html", {"run": run})


def test_it_says_n_too_small_instead_of_a_p99_from_30_values() -> None:
    rows = [dist_row("getppid", range(30), "ns", layer="native")]
    assert tail_text(rows[0]["dist"], "p99") == "n too small"
    html = table(rows)
    assert "n too small" in html and "fewer than 100 values" in html


def test_it_shows_the_interquartile_range_beside_the_median() -> None:
    (out,) = [dist_row("getppid", [10, 11, 12, 13, 14, 15, 16, 90], "ns")]
    assert spread_text(out["dist"]) == "11–15"
    assert "11–15" in table([out])
    # Three values have no quartiles but a standard deviation.
    assert spread_text(dist_row("x", [1, 2, 3], "ns")["dist"]) == "± 1 sd"
    assert spread_text(dist_row("x", [1], "ns")["dist"]) == "n too small"


def test_it_leaves_out_the_native_column_when_no_row_has_a_ratio() -> None:
    plain = table([row("requests/s", 1000, "requests/s"), dist_row("latency", range(200), "µs")])
    assert "× native" not in plain and "—" not in plain
    rows = with_ratios(
        [
            dist_row("a", [20, 21, 22, 23], "ns", layer="python"),
            dist_row("b", [2] * 4, "ns", layer="native"),
        ]
    )
    assert "× native" in table(rows) and "10.8×" in table(rows)
