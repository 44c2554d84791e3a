"""Where a run's first second goes: a timestamp (epoch ns) per stage, stored in ``Run.stages``.

Several processes write them (the view, the runner, the consumer reporting the browser's first
frame), so each write merges into the stored object in one UPDATE and never overwrites a stage
already there: the first time a stage is reached is the one that counts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from django.db.models import F, Func, JSONField, TextField, Value

# In the order a run reaches them, with the words the run page shows.
STAGES = (
    ("post", "form received (over the socket, or POST)"),
    ("committed", "run committed"),
    ("claimed", "claimed by the agent"),
    ("runner_ready", "runner ready"),
    ("sandbox_started", "sandbox started"),
    ("hello", "worker's hello"),
    ("first_stored", "first event stored"),
    ("first_published", "first event published"),
    ("first_frame", "first frame in the browser"),
)
STAGE_NAMES = tuple(name for name, _ in STAGES)


def now_ns() -> int:
    """Wall-clock time: stages are written by several processes."""
    return time.time_ns()


class _KeepFirst(Func):
    """``stages`` with the new stages added, the stored ones winning (JSON merge patch)."""

    output_field = JSONField()

    def __init__(self, new: dict[str, int]) -> None:
        super().__init__(Value(json.dumps(new), output_field=TextField()), F("stages"))

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, function="json_patch", **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        new_sql, new_params = compiler.compile(self.source_expressions[0])
        old_sql, old_params = compiler.compile(self.source_expressions[1])
        return f"(CAST({new_sql} AS jsonb) || {old_sql})", (*new_params, *old_params)


def mark(run_id: int, stages: dict[str, int]) -> None:
    """Store ``stages`` ({name: epoch ns}) of run ``run_id``, keeping any already stored."""
    from sysops.models import Run

    unknown = set(stages) - set(STAGE_NAMES)
    if unknown:
        raise ValueError(f"unknown stages: {sorted(unknown)}")
    if stages:
        Run.objects.filter(pk=run_id).update(stages=_KeepFirst(stages))


@dataclass(frozen=True)
class Step:
    name: str
    label: str
    at_ns: int
    since_start_ms: float
    since_previous_ms: float


def timeline(stages: dict[str, Any]) -> list[Step]:
    """The stages reached, in their order, with milliseconds since the POST and since the stage
    before."""
    reached = [(name, label, stages[name]) for name, label in STAGES if name in stages]
    if not reached:
        return []
    start = reached[0][2]
    steps, previous = [], start
    for name, label, at_ns in reached:
        steps.append(Step(name, label, at_ns, (at_ns - start) / 1e6, (at_ns - previous) / 1e6))
        previous = at_ns
    return steps
