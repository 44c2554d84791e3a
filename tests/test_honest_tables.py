"""What the results table says about a distribution: no percentile the sample count cannot
support, a spread beside the median, a "× native" column only where some row has a ratio.
Rows come from the real toolkit, as probes make them."""

from django.template.loader import render_to_string

from sysops.models import Run
from sysops.templatetags.sysops_tags import num, spread_text, tail_text
from sysops.worker.toolkit.rows import dist_row, row, with_ratios
from tests.probes.harness import run_probe


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


def probe_rows(probe, params) -> list[dict]:
    events = run_probe(probe.run, params)
    return [row for event in events.of("result") for row in event["rows"]]


def test_a_real_syscall_cost_table_says_n_too_small_and_shows_the_spread() -> None:
    from sysops.experiments.syscall_cost import probe

    params = {"call": "getppid", "layers": ["python", "native"], "iterations": 2_000}
    rows = probe_rows(probe, {**params, "repetitions": 8, "warmup": 1})
    html = table(rows)
    assert html.count("n too small") == 2  # a p99 from 8 repetitions would be their maximum
    assert "× native" in html and "IQR" in html
    for out in rows:
        assert spread_text(out["dist"]) == f"{num(out['dist']['q1'])}–{num(out['dist']['q3'])}"


def test_a_real_epoll_echo_table_has_one_latency_row_and_no_native_column() -> None:
    from sysops.experiments.epoll_echo import probe

    rows = probe_rows(probe, {"clients": 2, "message_bytes": 64, "duration_s": 0.5})
    html = table(rows)
    assert "× native" not in html
    latency = [r for r in rows if r["metric"].startswith("latency")]
    assert len(latency) == 1 and latency[0]["dist"]["p99"] is not None
    assert html.count(num(latency[0]["dist"]["max"])) == 1
