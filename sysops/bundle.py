"""A run, or a comparison of runs, as one self-contained JSON bundle; and a bundle back into runs.

A bundle carries what a run measured and where: parameters, the host fingerprint, results,
samples, the trace summary (not the trace's events: those are a download of their own), logs,
the versions of the app and kernel, and the sha256 of its canonical JSON. Imported runs are
shown read-only, marked ``imported`` with where they came from; they are created finished, so no
agent ever claims them.

A bundle comes from anywhere, so it is checked as strictly as a worker's events, with the same
checks (``sysops.agent.events``) plus the form of its experiment for the parameters. Any field
that does not fit refuses the whole bundle with a message naming the field, and nothing is
created. Names (metrics, units, series, syscalls, host facts, log sources) may not hold markup;
free text (notes, reasons, log lines) is kept as the run wrote it and, like everything on every
page, rendered escaped.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from sysops.agent.events import (
    INT_LIMIT,
    NAME_MAX_CHARS,
    ROW_EXTRA_KEY,
    Invalid,
    _host,
    _number,
    _plain,
    _row,
    _text,
)
from sysops.agent.recorder import MAX_LOG_CHARS, MAX_LOG_LINES, MAX_RESULT_BYTES, MAX_RESULT_ROWS
from sysops.comparison import MAX_COMPARED_RUNS
from sysops.experiments import registry
from sysops.models import REASON_MAX_CHARS, Host, Run, RunLog, SampleChunk

FORMAT = "syscall-playground-bundle"
FORMAT_VERSION = 1
APP_NAME = "syscall-playground"
MAX_SAMPLES_PER_RUN = 200_000
MAX_SUMMARY_ROWS = 1000
MAX_TRACE_STATE_BYTES = 256 << 10
SAMPLES_PER_CHUNK = 5000
SOURCE_MAX_CHARS = 300
LOG_SOURCE_MAX_CHARS = 16
# The start of a tag, a comment or a processing instruction: "<b", "</", "<!", "<?".
MARKUP = re.compile(r"<\s*[A-Za-z/!?]")
TOP_KEYS = frozenset({"format", "version", "kind", "exported_at", "exporter", "source", "runs"})
SUMMARY_ROW_NUMBERS = ("total_s", "avg_s", "max_s", "share_pct")
# A record's fields that are the run's own, as they are.
COPIED_FIELDS = (
    "experiment",
    "params",
    "trace_mode",
    "status",
    "reason",
    "progress",
    "progress_message",
    "phase",
    "results",
    "unsandboxed",
    "unbounded",
    "trace",
)
RUN_KEYS = frozenset(
    {*COPIED_FIELDS, "id", "created_at", "started_at", "finished_at", "host", "samples", "logs"}
)


class BundleError(ValueError):
    """Why a bundle was refused, naming the field."""


# --- export --------------------------------------------------------------------------------------


@functools.cache
def app_version() -> str:
    """The commit this instance runs, as git describes it, or "unknown" outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def run_record(run: Run, *, logs: bool = True) -> dict[str, Any]:
    """Everything a run measured, as plain JSON."""
    samples = [
        sample
        for chunk in run.sample_chunks.order_by("seq").values_list("samples", flat=True)
        for sample in chunk
    ]
    return {
        "id": run.pk,
        "experiment": run.experiment,
        "params": run.params,
        "trace_mode": run.trace_mode,
        "status": run.status,
        "reason": run.reason,
        "progress": run.progress,
        "progress_message": run.progress_message,
        "phase": run.phase,
        "results": run.results,
        "unsandboxed": run.unsandboxed,
        "unbounded": run.unbounded,
        "trace": run.trace,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "host": run.host.fingerprint if run.host else None,
        "samples": samples,
        "logs": [
            {"level": level, "source": source, "message": message}
            for level, source, message in run.logs.order_by("id").values_list(
                "level", "source", "message"
            )
        ]
        if logs
        else [],
    }


def canonical(content: Mapping[str, Any]) -> bytes:
    """The bytes the sha256 is taken of: sorted keys, no spaces, ASCII."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def seal(content: Mapping[str, Any]) -> dict[str, Any]:
    """The content with its sha256 (of everything but the sha256 itself)."""
    body = {k: v for k, v in content.items() if k != "sha256"}
    return {**body, "sha256": hashlib.sha256(canonical(body)).hexdigest()}


def export(runs: Sequence[Run], *, source: str, logs: bool = True) -> dict[str, Any]:
    """A bundle of one run, or of the runs of a comparison (the first is the baseline)."""
    return seal(
        {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "kind": "run" if len(runs) == 1 else "comparison",
            "exported_at": timezone.now().isoformat(),
            "exporter": {
                "app": APP_NAME,
                "app_version": app_version(),
                "kernel": os.uname().release,
            },
            "source": source[:SOURCE_MAX_CHARS],
            "runs": [run_record(run, logs=logs) for run in runs],
        }
    )


# --- import --------------------------------------------------------------------------------------


def parse(data: bytes) -> dict[str, Any]:
    """A bundle's bytes, checked: its content with each run's record validated and shaped as a
    local run holds it. Raises BundleError naming the first field that does not fit."""
    cap = settings.SYSOPS_BUNDLE_MAX_BYTES
    if len(data) > cap:
        raise BundleError(f"the bundle is over {cap:,} bytes (SYSOPS_BUNDLE_MAX_BYTES)")
    try:
        bundle = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise BundleError("the bundle is not UTF-8 text") from None
    except RecursionError:
        raise BundleError("the bundle is nested too deeply") from None
    except ValueError as exc:
        raise BundleError(f"the bundle is not JSON ({exc})") from None
    try:
        return _bundle(bundle)
    except Invalid as exc:
        raise BundleError(str(exc)) from None
    except RecursionError:
        raise BundleError("the bundle is nested too deeply") from None


def _bundle(bundle: Any) -> dict[str, Any]:
    if not isinstance(bundle, dict):
        raise Invalid("the bundle must be a JSON object")
    if bundle.get("format") != FORMAT:
        raise Invalid(f"format: this is not a {FORMAT}")
    if bundle.get("version") != FORMAT_VERSION:
        raise Invalid(
            f"version: {_short(bundle.get('version'))} is not a version this instance reads"
            f" ({FORMAT_VERSION})"
        )
    unknown = set(bundle) - TOP_KEYS - {"sha256"}
    if unknown:
        raise Invalid(f"unknown field {_short(sorted(unknown)[0])}")
    kind = bundle.get("kind")
    if kind not in ("run", "comparison"):
        raise Invalid('kind: must be "run" or "comparison"')
    runs = bundle.get("runs")
    if not isinstance(runs, list) or not 1 <= len(runs) <= MAX_COMPARED_RUNS:
        raise Invalid(f"runs: must be a list of 1 to {MAX_COMPARED_RUNS} runs")
    records = [_record(record, f"runs[{i}]") for i, record in enumerate(runs)]
    if kind == "comparison" and len({r["experiment"] for r in records}) > 1:
        raise Invalid("runs: a comparison's runs must all be of one experiment")
    exporter = bundle.get("exporter")
    if not isinstance(exporter, dict):
        raise Invalid("exporter: must be an object")
    exporter = {
        key: _name(_text(value, f"exporter.{_key(key, 'exporter')}", NAME_MAX_CHARS), "exporter")
        for key, value in exporter.items()
    }
    source = _name(_text(bundle.get("source", ""), "source", SOURCE_MAX_CHARS), "source")
    exported_at = _when(bundle.get("exported_at"), "exported_at", required=True)
    sha256 = bundle.get("sha256")
    if not isinstance(sha256, str) or sha256 != seal(bundle)["sha256"]:
        raise Invalid("sha256: does not match the content (the bundle was changed or damaged)")
    return {
        "kind": kind,
        "source": source,
        "exporter": exporter,
        "exported_at": exported_at,
        "sha256": sha256,
        "runs": records,
    }


def _record(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise Invalid(f"{where}: must be an object")
    unknown = set(record) - RUN_KEYS
    if unknown:
        raise Invalid(f"{where}: unknown field {_short(sorted(unknown)[0])}")
    missing = RUN_KEYS - set(record) - {"logs"}
    if missing:
        raise Invalid(f"{where}.{sorted(missing)[0]}: missing")
    run_id = record["id"]
    if not isinstance(run_id, int) or isinstance(run_id, bool) or not 0 < run_id < 1 << 63:
        raise Invalid(f"{where}.id: must be a positive integer")
    slug = record["experiment"]
    experiment = registry.get(slug) if isinstance(slug, str) else None
    if experiment is None:
        raise Invalid(f"{where}.experiment: no experiment {_short(slug)} on this instance")
    trace_mode = record["trace_mode"]
    if trace_mode not in Run.TraceMode.values:
        raise Invalid(f"{where}.trace_mode: must be one of {', '.join(Run.TraceMode.values)}")
    status = record["status"]
    if status not in Run.TERMINAL:
        raise Invalid(
            f"{where}.status: must be a finished state ({', '.join(sorted(Run.TERMINAL))})"
        )
    progress = _number(record["progress"], f"{where}.progress")
    if not 0 <= progress <= 1:
        raise Invalid(f"{where}.progress: must be between 0 and 1")
    return {
        "id": run_id,
        "experiment": slug,
        "params": _params(experiment, record["params"], trace_mode, f"{where}.params"),
        "trace_mode": trace_mode,
        "status": status,
        "reason": _text(record["reason"], f"{where}.reason", REASON_MAX_CHARS),
        "progress": progress,
        "progress_message": _text(record["progress_message"], f"{where}.progress_message", 200),
        "phase": _name(_text(record["phase"], f"{where}.phase", 64), f"{where}.phase"),
        "results": _results(record["results"], f"{where}.results"),
        "unsandboxed": _bool(record["unsandboxed"], f"{where}.unsandboxed"),
        "unbounded": _bool(record["unbounded"], f"{where}.unbounded"),
        "trace": _trace(record["trace"], f"{where}.trace"),
        "created_at": _when(record["created_at"], f"{where}.created_at", required=True),
        "started_at": _when(record["started_at"], f"{where}.started_at"),
        "finished_at": _when(record["finished_at"], f"{where}.finished_at"),
        "host": _fingerprint(record["host"], f"{where}.host"),
        "samples": _samples(record["samples"], f"{where}.samples"),
        "logs": _logs(record.get("logs", []), f"{where}.logs"),
    }


def _params(experiment: Any, params: Any, trace_mode: str, where: str) -> dict[str, Any]:
    """The parameters as the experiment's own form makes them: a bundle cannot hold a run this
    instance's form would refuse."""
    if not isinstance(params, dict):
        raise Invalid(f"{where}: must be an object")
    for key in params:
        _key(key, where)
    cleaned, _, form = experiment.clean_params(experiment.form_data(params, trace_mode))
    if cleaned is None:
        field, errors = next(iter(form.errors.items()))
        raise Invalid(f"{where}.{field}: {' '.join(errors)}")
    for key in sorted(set(params) | set(cleaned)):
        if key not in cleaned:
            raise Invalid(f"{where}.{key}: not a parameter of {experiment.slug}")
        if params.get(key) != cleaned[key]:
            raise Invalid(
                f"{where}.{key}: {_short(params.get(key))} is not what the form makes of it"
            )
    return cleaned


def _results(rows: Any, where: str) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(_list(rows, where, MAX_RESULT_ROWS, "rows")):
        try:
            checked = _row(row, i)
        except Invalid as exc:
            raise Invalid(f"{where}: {exc}") from None
        for key in ("metric", "unit", "layer"):
            if key in checked:
                _name(checked[key], f"{where}[{i}].{key}")
        for key in checked.get("dist", {}):
            _name(key, f"{where}[{i}].dist")
        out.append(checked)
    if len(json.dumps(out)) > MAX_RESULT_BYTES:
        raise Invalid(f"{where}: over {MAX_RESULT_BYTES:,} bytes")
    return out


def _samples(samples: Any, where: str) -> list[list[Any]]:
    out = []
    series_seen: set[str] = set()
    for i, sample in enumerate(_list(samples, where, MAX_SAMPLES_PER_RUN, "samples")):
        if not isinstance(sample, list) or len(sample) != 3:
            raise Invalid(f"{where}[{i}]: must be [series, x, y]")
        series, x, y = sample
        if series not in series_seen:
            _name(_text(series, f"{where}[{i}] series", NAME_MAX_CHARS), f"{where}[{i}] series")
            series_seen.add(series)
        # The common case inline (a bundle holds up to 200,000 samples); anything else gets
        # the full check, which names what is wrong.
        if not (_plain_number(x) and _plain_number(y)):
            _number(x, f"{where}[{i}] x"), _number(y, f"{where}[{i}] y")
        out.append(sample)
    return out


def _plain_number(value: Any) -> bool:
    kind = type(value)
    return (kind is float and math.isfinite(value)) or (
        kind is int and -INT_LIMIT < value < INT_LIMIT
    )


def _logs(logs: Any, where: str) -> list[dict[str, str]]:
    out = []
    for i, line in enumerate(_list(logs, where, MAX_LOG_LINES, "lines")):
        if not isinstance(line, dict) or set(line) != {"level", "source", "message"}:
            raise Invalid(f"{where}[{i}]: must be an object with level, source and message")
        if line["level"] not in RunLog.Level.values:
            raise Invalid(f"{where}[{i}].level: must be one of {', '.join(RunLog.Level.values)}")
        source = _text(line["source"], f"{where}[{i}].source", LOG_SOURCE_MAX_CHARS)
        out.append(
            {
                "level": line["level"],
                "source": _name(source, f"{where}[{i}].source"),
                "message": _text(line["message"], f"{where}[{i}].message", MAX_LOG_CHARS),
            }
        )
    return out


def _trace(trace: Any, where: str) -> dict[str, Any]:
    """The trace's state: its summary checked row by row, the rest bounded plain JSON."""
    if not isinstance(trace, dict):
        raise Invalid(f"{where}: must be an object")
    out = {}
    for key, value in trace.items():
        _key(key, where)
        if key == "summary":
            out[key] = _summary(value, f"{where}.summary")
        else:
            out[key] = _plain(value, f"{where}.{key}")
    if len(json.dumps(out)) > MAX_TRACE_STATE_BYTES:
        raise Invalid(f"{where}: over {MAX_TRACE_STATE_BYTES:,} bytes")
    return out


def _summary(summary: Any, where: str) -> dict[str, Any]:
    # harness_calls (the worker's own calls, left out of the counts) came later: optional.
    if not isinstance(summary, dict) or not {"rows", "total"} <= set(summary) <= {
        "rows",
        "total",
        "harness_calls",
    }:
        raise Invalid(f"{where}: must be an object with rows and total (and harness_calls)")
    out_rows = []
    for i, row in enumerate(_list(summary["rows"], f"{where}.rows", MAX_SUMMARY_ROWS, "rows")):
        at = f"{where}.rows[{i}]"
        keys = {"name", "calls", "errors", *SUMMARY_ROW_NUMBERS}
        if not isinstance(row, dict) or set(row) != keys:
            raise Invalid(f"{at}: must have exactly {', '.join(sorted(keys))}")
        out_rows.append(
            {
                "name": _name(_text(row["name"], f"{at}.name", 64), f"{at}.name"),
                "calls": _count(row["calls"], f"{at}.calls"),
                "errors": _count(row["errors"], f"{at}.errors"),
                **{k: _number(row[k], f"{at}.{k}") for k in SUMMARY_ROW_NUMBERS},
            }
        )
    total = summary["total"]
    if not isinstance(total, dict) or set(total) != {"calls", "errors", "total_s"}:
        raise Invalid(f"{where}.total: must have exactly calls, errors and total_s")
    return {
        "rows": out_rows,
        "total": {
            "calls": _count(total["calls"], f"{where}.total.calls"),
            "errors": _count(total["errors"], f"{where}.total.errors"),
            "total_s": _number(total["total_s"], f"{where}.total.total_s"),
        },
        **(
            {"harness_calls": _count(summary["harness_calls"], f"{where}.harness_calls")}
            if "harness_calls" in summary
            else {}
        ),
    }


def _fingerprint(host: Any, where: str) -> dict[str, Any] | None:
    if host is None:
        return None
    if not isinstance(host, dict):
        raise Invalid(f"{where}: must be an object or null")
    try:
        shaped = _host(host)
    except Invalid as exc:
        raise Invalid(f"{where}: {exc}") from None
    _no_markup_anywhere(shaped, where)
    return shaped


def _no_markup_anywhere(value: Any, where: str) -> None:
    if isinstance(value, str):
        _name(value, where)
    elif isinstance(value, list):
        for item in value:
            _no_markup_anywhere(item, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _name(key, where)
            _no_markup_anywhere(item, f"{where}.{key}")


# --- small checks -------------------------------------------------------------------------------


def _name(value: str, where: str) -> str:
    if MARKUP.search(value):
        raise Invalid(f"{where}: markup is not allowed here ({_short(value)})")
    return value


def _key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not ROW_EXTRA_KEY.match(key):
        raise Invalid(f"{where}: {_short(key)} is not a lower-case name")
    return key


def _list(value: Any, where: str, max_items: int, noun: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > max_items:
        raise Invalid(f"{where}: must be a list of at most {max_items:,} {noun}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{where}: must be true or false")
    return value


def _count(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 63:
        raise Invalid(f"{where}: must be a non-negative integer")
    return value


def _when(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    when = parse_datetime(value) if isinstance(value, str) and len(value) <= 40 else None
    if when is None or when.tzinfo is None:
        raise Invalid(f"{where}: must be an ISO 8601 time with its UTC offset")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


@transaction.atomic
def import_bundle(
    data: bytes, *, user: AbstractBaseUser | AnonymousUser | None, origin: str = ""
) -> list[Run]:
    """The bundle's runs, created finished and marked imported (once: importing the same bundle
    again gives the same runs); nothing when it is refused. ``origin`` says how it arrived (the
    uploaded file's name)."""
    bundle = parse(data)
    # The same bundle twice (a double click, a second try) gives the runs it gave the first time.
    earlier = list(
        Run.objects.filter(imported=True, imported_from__sha256=bundle["sha256"]).order_by("pk")
    )
    if len(earlier) == len(bundle["runs"]):
        return earlier
    owner = user if user is not None and user.is_authenticated else None
    imported_at = timezone.now().isoformat()
    runs = []
    for record in bundle["runs"]:
        host = Host.for_fingerprint(record["host"]) if record["host"] else None
        run = Run.objects.create(
            **{name: record[name] for name in COPIED_FIELDS},
            host=host,
            user=owner,
            started_at=parse_datetime(record["started_at"]) if record["started_at"] else None,
            finished_at=parse_datetime(record["finished_at"]) if record["finished_at"] else None,
            imported=True,
            imported_from={
                "source": bundle["source"],
                "run": record["id"],
                "exported_at": bundle["exported_at"],
                "exporter": bundle["exporter"],
                "sha256": bundle["sha256"],
                "file": origin[:NAME_MAX_CHARS],
                "imported_at": imported_at,
            },
        )
        samples = record["samples"]
        chunks = [
            SampleChunk(run=run, seq=seq, samples=samples[start : start + SAMPLES_PER_CHUNK])
            for seq, start in enumerate(range(0, len(samples), SAMPLES_PER_CHUNK), start=1)
        ]
        SampleChunk.objects.bulk_create(chunks)
        RunLog.objects.bulk_create(
            RunLog(
                run=run, seq=1, level=line["level"], source=line["source"], message=line["message"]
            )
            for line in record["logs"]
        )
        # The measurement's own time, not the import's; the snapshot reads up to last_seq.
        Run.objects.filter(pk=run.pk).update(
            created_at=parse_datetime(record["created_at"]), last_seq=max(1, len(chunks))
        )
        run.refresh_from_db()
        runs.append(run)
    return runs
