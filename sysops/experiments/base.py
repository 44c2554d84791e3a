"""What an experiment declares on the web side: metadata, a bounded form, charts and limits.

The probe (``sysops/experiments/<name>/probe.py``) is the sandbox side and imports none of this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django import forms


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    x_label: str
    y_label: str
    series: tuple[str, ...]
    points: bool = False  # scatter of samples rather than a line through them

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "x_label": self.x_label,
            "y_label": self.y_label,
            "series": list(self.series),
            "points": self.points,
        }


@dataclass(frozen=True)
class Experiment:
    slug: str
    title: str
    explanation: str
    syscalls: tuple[str, ...]
    look_for: str
    form_class: type[forms.Form]
    probe: str  # module path of the sandbox-side probe
    charts: Callable[[Mapping[str, Any]], list[Chart]]
    wall_s: Callable[[Mapping[str, Any]], float]
    # Per-experiment overrides of sandbox limits (names of sysops.sandbox.Policy fields).
    limits: Callable[[Mapping[str, Any]], dict[str, Any]] = field(default=lambda params: {})
    hidden: bool = False

    def clean_params(self, data: Mapping[str, Any]) -> tuple[dict[str, Any] | None, forms.Form]:
        """Validate raw input; returns (JSON-ready params or None, the bound form)."""
        form = self.form_class(data)
        if not form.is_valid():
            return None, form
        return dict(form.cleaned_data), form
