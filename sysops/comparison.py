"""Runs side by side: which runs a permalink names, and what differs between them.

A comparison is not stored: its permalink ``/compare/12,13/`` names the runs, the first being
the baseline that ratios and deltas are taken against. Everything here is a read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sysops.experiments import registry
from sysops.experiments.base import Experiment
from sysops.models import Run, SampleChunk

T = TypeVar("T")
MIN_COMPARED_RUNS = 2
MAX_COMPARED_RUNS = 8
# Samples per run drawn on a comparison's charts; beyond it, every n-th of each series.
MAX_CHART_SAMPLES_PER_RUN = 20_000
# One colour per run, the same on every chart and in every table heading.
RUN_COLORS = (
    "#1a56db",
    "#e8590c",
    "#0f766e",
    "#9333ea",
    "#b3261e",
    "#ca8a04",
    "#475569",
    "#db2777",
)
# A run's several series on one chart are told apart by their dash pattern.
SERIES_DASHES = ([], [6, 4], [2, 3], [10, 3, 2, 3])
# Host facts first in the order a reader checks them; anything else follows, by name.
HOST_KEY_ORDER = (
    "sandbox",
    "hostname",
    "kernel.release",
    "kernel.version",
    "machine",
    "cpu_model",
    "cores.online",
    "cores.usable",
    "clocksource",
    "clocksources_available",
    "governor",
    "virtualisation.kind",
    "python.version",
    "python.implementation",
)
# The note toolkit.rows.facts_rows gives the host facts a probe reports as result rows.
FACT_NOTE = "host fact"
# Where a run was measured, not what: not worth a row of its own.
HOST_KEYS_HIDDEN = frozenset({"python.executable", "virtualisation.evidence"})


class ComparisonError(Exception):
    """Why a set of runs cannot be compared, for a person; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def parse_ids(text: str) -> list[int]:
    """``"12,13"`` → ``[12, 13]``, in the order given (the first is the baseline)."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and len(part) <= 12 for part in parts):
        raise ComparisonError(
            "A comparison names runs by number, separated by commas: /compare/12,13/."
        )
    ids = [int(part) for part in parts]
    if len(set(ids)) != len(ids):
        raise ComparisonError("Each run may appear only once in a comparison.")
    if len(ids) < MIN_COMPARED_RUNS:
        raise ComparisonError(f"Pick at least {MIN_COMPARED_RUNS} runs to compare.")
    if len(ids) > MAX_COMPARED_RUNS:
        raise ComparisonError(
            f"At most {MAX_COMPARED_RUNS} runs can be compared at once; {len(ids)} were named."
        )
    return ids


def ids_text(runs: Iterable[Run | int]) -> str:
    """The permalink's part naming these runs."""
    return ",".join(str(r.pk if isinstance(r, Run) else r) for r in runs)


def load_runs(ids: Sequence[int]) -> list[Run]:
    """The runs, in the order named: all must exist and be of one experiment. Runs still
    queued or running are compared as they stand (an "all hosts" submission lands here)."""
    found = Run.objects.select_related("host", "user").in_bulk(ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise ComparisonError(f"No run {', '.join(map(str, missing))}.", status=404)
    runs = [found[i] for i in ids]
    experiments = sorted({r.experiment for r in runs})
    if len(experiments) > 1:
        raise ComparisonError(
            "Only runs of one experiment can be compared; these are of "
            + ", ".join(experiments)
            + "."
        )
    return runs


@dataclass(frozen=True)
class DiffRow(Generic[T]):
    """One parameter, host fact or syscall: its value in each run, and whether they differ."""

    name: str
    values: list[T]
    differs: bool


@dataclass(frozen=True)
class ResultCell:
    value: Any
    ratio: float | None  # to the baseline's value, where both are numbers


@dataclass(frozen=True)
class ResultRow:
    metric: str
    unit: str
    cells: list[ResultCell | None]  # None: the run has no such row
    differs: bool  # a fact the runs report differently (a filesystem, a verdict), not a figure


@dataclass(frozen=True)
class TraceCell:
    calls: int
    errors: int
    total_us: float
    d_calls: int | None  # against the baseline; None for the baseline itself
    d_errors: int | None
    d_total_us: float | None


@dataclass(frozen=True)
class Comparison:
    runs: list[Run]
    experiment: Experiment | None
    colors: list[str]
    params: list[DiffRow[str]]
    host: list[DiffRow[str]]
    results: list[ResultRow]
    traced: bool  # at least one run has a syscall summary
    trace: list[DiffRow[TraceCell]]
    charts: list[dict[str, Any]]

    @property
    def ids(self) -> str:
        return ids_text(self.runs)

    @property
    def pending(self) -> list[Run]:
        """Runs not finished yet: the page says so and reloads until they are."""
        return [run for run in self.runs if not run.is_terminal]

    @property
    def differing_params(self) -> int:
        return sum(row.differs for row in self.params)

    @property
    def differing_host_facts(self) -> int:
        return sum(row.differs for row in self.host)

    @property
    def host_shown(self) -> list[DiffRow[str]]:
        """The facts a reader checks first, and every fact that differs."""
        return [row for row in self.host if row.differs or row.name in HOST_KEY_ORDER]

    @property
    def host_same(self) -> list[DiffRow[str]]:
        """The rest (mitigations, mostly) where every host agrees: folded away."""
        return [row for row in self.host if not row.differs and row.name not in HOST_KEY_ORDER]


def compare(runs: list[Run]) -> Comparison:
    experiment = registry.get(runs[0].experiment)
    traced = any(_summary_rows(run) for run in runs)
    return Comparison(
        runs=runs,
        experiment=experiment,
        colors=[RUN_COLORS[i % len(RUN_COLORS)] for i in range(len(runs))],
        params=param_diff(runs),
        host=host_diff(runs),
        results=result_table(runs),
        traced=traced,
        trace=trace_diff(runs) if traced else [],
        charts=overlaid_charts(experiment, runs),
    )


# --- parameters and hosts ----------------------------------------------------------------------


def show_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(show_value(v) for v in value) or "—"
    return str(value)


def _diff_rows(names: Iterable[str], per_run: list[Mapping[str, Any]]) -> list[DiffRow[str]]:
    rows = []
    for name in names:
        values = [show_value(flat.get(name)) for flat in per_run]
        rows.append(DiffRow(name, values, len(set(values)) > 1))
    return rows


def _params_with_trace(run: Run) -> dict[str, Any]:
    return {**run.params, "trace": run.trace_mode}


def param_diff(runs: Sequence[Run]) -> list[DiffRow[str]]:
    per_run = [_params_with_trace(run) for run in runs]
    names = list(dict.fromkeys(name for params in per_run for name in params))
    return _diff_rows(names, per_run)


def param_changes(before: Run, after: Run) -> list[DiffRow[str]]:
    """What "run again with changes" changed: only the parameters that differ."""
    return [row for row in param_diff([before, after]) if row.differs]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested fingerprint as dotted keys: ``{"kernel": {"release": …}}`` → ``kernel.release``."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, inner in value.items():
        flat.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def reported_facts(run: Run) -> dict[str, Any]:
    """Host facts a probe measured from inside the sandbox (toolkit.rows.facts_rows: THP mode,
    a scratch directory's filesystem…), which the fingerprint does not hold."""
    return {
        f"reported: {row['metric']}": row.get("value")
        for row in run.results
        if isinstance(row, dict) and str(row.get("note", "")).startswith(FACT_NOTE)
    }


def host_diff(runs: Sequence[Run]) -> list[DiffRow[str]]:
    per_run = [flatten(run.host.fingerprint) if run.host else {} for run in runs]
    for flat, run in zip(per_run, runs, strict=True):
        flat["sandbox"] = (
            "UNSANDBOXED" if run.unsandboxed else "UNBOUNDED" if run.unbounded else "sandboxed"
        )
        flat.update(reported_facts(run))
    present = {name for flat in per_run for name in flat} - HOST_KEYS_HIDDEN
    names = [n for n in HOST_KEY_ORDER if n in present]
    names += sorted(present - set(names), key=lambda n: (n.startswith("mitigations."), n))
    return _diff_rows(names, per_run)


# --- results -----------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def result_table(runs: Sequence[Run]) -> list[ResultRow]:
    """One row per metric (in the order the runs first report them), one cell per run."""
    by_run = [
        {row["metric"]: row for row in run.results if isinstance(row, dict) and "metric" in row}
        for run in runs
    ]
    metrics = list(dict.fromkeys(metric for rows in by_run for metric in rows))
    table = []
    for metric in metrics:
        base = by_run[0].get(metric)
        base_value = base.get("value") if base else None
        cells: list[ResultCell | None] = []
        unit = ""
        for rows in by_run:
            row = rows.get(metric)
            if row is None:
                cells.append(None)
                continue
            unit = unit or str(row.get("unit") or "")
            value = row.get("value")
            ratio = (
                value / base_value
                if _is_number(value) and _is_number(base_value) and base_value != 0
                else None
            )
            cells.append(ResultCell(value, ratio))
        facts = [show_value(c.value) for c in cells if c is not None and not _is_number(c.value)]
        table.append(ResultRow(metric, unit, cells, len(set(facts)) > 1))
    return table


# --- traces ------------------------------------------------------------------------------------


def _summary_rows(run: Run) -> dict[str, Mapping[str, Any]]:
    summary = (run.trace or {}).get("summary") or {}
    return {row["name"]: row for row in summary.get("rows") or () if isinstance(row, dict)}


def trace_diff(runs: Sequence[Run]) -> list[DiffRow[TraceCell]]:
    """Calls, errors and time per syscall in each run, with the difference to the baseline;
    syscalls whose counts differ first, then by the largest change in time."""
    per_run = [_summary_rows(run) for run in runs]
    names = list(dict.fromkeys(name for rows in per_run for name in rows))
    table = []
    for name in names:
        cells = []
        for i, rows in enumerate(per_run):
            row = rows.get(name) or {}
            calls, errors = int(row.get("calls") or 0), int(row.get("errors") or 0)
            total_us = float(row.get("total_s") or 0.0) * 1e6
            if i == 0:
                cells.append(TraceCell(calls, errors, total_us, None, None, None))
            else:
                base = cells[0]
                cells.append(
                    TraceCell(
                        calls,
                        errors,
                        total_us,
                        calls - base.calls,
                        errors - base.errors,
                        total_us - base.total_us,
                    )
                )
        differs = any(c.d_calls or c.d_errors for c in cells[1:])
        table.append(DiffRow(name, cells, differs))
    table.sort(
        key=lambda r: (not r.differs, -max(abs(c.d_total_us or 0.0) for c in r.values), r.name)
    )
    return table


# --- charts ------------------------------------------------------------------------------------


def series_id(run: Run, series: str) -> str:
    """A run's series on an overlaid chart."""
    return f"run{run.pk}:{series}"


def overlaid_charts(experiment: Experiment | None, runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Each of the experiment's charts once, with every run's series on it: one colour per run,
    one dash pattern per series, legends "run 12: Python os". Charts depend on parameters (the
    layers chosen, say), so each run contributes the series its own parameters chart."""
    if experiment is None:
        return []
    charts: dict[str, dict[str, Any]] = {}
    for i, run in enumerate(runs):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        for chart in experiment.charts(run.params):
            spec = chart.to_dict()
            merged = charts.setdefault(
                spec["id"], {**spec, "series": [], "labels": {}, "colors": [], "dashes": []}
            )
            for j, name in enumerate(spec["series"]):
                merged["series"].append(series_id(run, name))
                merged["labels"][series_id(run, name)] = f"run {run.pk}: {spec['labels'][name]}"
                merged["colors"].append(color)
                merged["dashes"].append(SERIES_DASHES[j % len(SERIES_DASHES)])
    return list(charts.values())


@dataclass(frozen=True)
class ChartSamples:
    samples: list[list[Any]]  # [series id, x, y], named as on the overlaid charts
    thinned: dict[int, int]  # run id → every how many samples one is drawn, where thinned


def overlaid_samples(
    runs: Sequence[Run], max_per_run: int = MAX_CHART_SAMPLES_PER_RUN
) -> ChartSamples:
    """The runs' stored samples for the overlaid charts. A run with more than ``max_per_run``
    is thinned to every n-th sample of each series (so each curve keeps its shape end to end),
    and the page says so: eight long runs must not make a page of a hundred megabytes."""
    samples: list[list[Any]] = []
    thinned: dict[int, int] = {}
    for run in runs:
        chunks = SampleChunk.objects.filter(run=run).order_by("seq")
        stored = [s for chunk in chunks.values_list("samples", flat=True) for s in chunk]
        step = math.ceil(len(stored) / max_per_run) if len(stored) > max_per_run else 1
        if step > 1:
            thinned[run.pk] = step
        seen: dict[str, int] = {}
        for series, x, y in stored:
            index = seen[series] = seen.get(series, -1) + 1
            if index % step == 0:
                samples.append([series_id(run, series), x, y])
    return ChartSamples(samples, thinned)


def form_values(form: Any) -> dict[str, list[str]]:
    """An unbound form's initial values as the browser would post them (each field's list of
    strings), so the page can tell which fields a person changed before submitting."""
    values = {}
    for field in form:
        value = field.value()
        if isinstance(value, bool):  # a checkbox: posted as "on" when ticked
            values[field.name] = ["on"] if value else []
            continue
        shown = field.field.widget.format_value(value)  # a select's is a list of strings
        if shown is None or shown == "":
            values[field.name] = []
        elif isinstance(shown, list | tuple):
            values[field.name] = [str(v) for v in shown]
        else:
            values[field.name] = [str(shown)]
    return values


def candidates(run: Run, limit: int = 10) -> list[Run]:
    """Other finished runs of the same experiment, newest first: what a run page offers to
    compare with."""
    return list(
        Run.objects.filter(experiment=run.experiment, status__in=Run.TERMINAL)
        .exclude(pk=run.pk)
        .select_related("host", "user")[:limit]
    )
