"""Result rows: ``{metric, value, unit, note}``, optionally ``dist``, ``layer`` and
``ratio_to_native`` (the event protocol's contract), and rows for refused calls."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Mapping
from typing import Any

from sysops.worker.toolkit.stats import Distribution


def row(metric: str, value: Any, unit: str, note: str = "", **extra: Any) -> dict[str, Any]:
    return {"metric": metric, "value": value, "unit": unit, "note": note, **extra}


def dist_row(
    metric: str,
    values: Iterable[float] | Distribution,
    unit: str,
    note: str = "",
    *,
    layer: str | None = None,
    digits: int = 2,
    **extra: Any,
) -> dict[str, Any]:
    """A timing row: the value is the median, the distribution goes with it."""
    dist = values if isinstance(values, Distribution) else Distribution.of(values)
    out = row(metric, round(dist.median, digits), unit, note, dist=dist.to_dist(digits), **extra)
    if layer is not None:
        out["layer"] = layer
    return out


def with_ratios(rows: list[dict[str, Any]], base_layer: str = "native") -> list[dict[str, Any]]:
    """Adds ``ratio_to_native`` to each row with a layer, against the row of ``base_layer``
    (only when that layer was measured: a ratio to nothing means nothing)."""
    base = next((r["value"] for r in rows if r.get("layer") == base_layer), None)
    if not base:
        return rows
    for out in rows:
        if out.get("layer") and isinstance(out.get("value"), int | float):
            out["ratio_to_native"] = round(out["value"] / base, 3)
    return rows


def errno_name(err: int | OSError | None) -> str:
    """EMFILE for 24; "ok" for 0 or None."""
    number = err.errno if isinstance(err, OSError) else err
    if not number:
        return "ok"
    return errno.errorcode.get(number, f"errno {number}")


def errno_fields(err: int | OSError | None) -> dict[str, Any]:
    """``{errno, name, message}`` of a refusal, as the page shows it."""
    number = (err.errno if isinstance(err, OSError) else err) or 0
    return {
        "errno": number,
        "name": errno_name(number),
        "message": os.strerror(number) if number else "success",
    }


def errno_row(
    metric: str, err: int | OSError | None, note: str = "", **extra: Any
) -> dict[str, Any]:
    """A row whose value is the errno a call got (0: it worked), its name leading the note."""
    fields = errno_fields(err)
    text = f"{fields['name']} ({fields['message']})" if fields["errno"] else "ok"
    return row(metric, fields["errno"], "errno", f"{text} {note}".strip(), **extra)


def facts_rows(facts: Mapping[str, Any], note: str = "host fact") -> list[dict[str, Any]]:
    """Host facts a figure depends on, one row each (value as text, unit empty)."""
    return [row(name, value, "", note) for name, value in facts.items()]
