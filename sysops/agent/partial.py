"""What a run that stopped early (cancelled, failed, timed out) had measured: its chart points
become result rows marked partial, so the page never says "No results" over a chart of data."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sysops.experiments.base import Chart
from sysops.worker.toolkit.rows import dist_row

PARTIAL = "partial"


def rows_from_samples(
    samples: Iterable[Sequence[Any]], charts: Sequence[Chart]
) -> list[dict[str, Any]]:
    """One row per charted series that has points: the distribution of its y values, in the
    chart's unit, saying what range of x it covers. A stand-in for the probe's own summary,
    which never came, and marked as such."""
    ys: dict[str, list[float]] = defaultdict(list)
    xs: dict[str, list[float]] = defaultdict(list)
    for series, x, y in samples:
        if isinstance(y, int | float) and isinstance(x, int | float):
            ys[series].append(float(y))
            xs[series].append(float(x))
    rows = []
    for chart in charts:
        for series in chart.series:
            if not ys[series]:
                continue
            note = (
                f"{len(ys[series]):,} chart points recorded before the run stopped "
                f"({chart.x_label} {min(xs[series]):g} to {max(xs[series]):g}): the spread of "
                "those points, not the experiment's own summary"
            )
            label = chart.labels.get(series, series)
            rows.append(
                dist_row(f"{chart.title}: {label}", ys[series], chart.y_label, note, partial=True)
            )
    return rows


def mark_partial(rows: list[dict[str, Any]]) -> None:
    """Rows a stopped run's probe did send are real but cover only part of the work."""
    for row in rows:
        row[PARTIAL] = True
