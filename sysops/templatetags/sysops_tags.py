from __future__ import annotations

import re
import secrets
from typing import Any

from django import template
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from sysops.tracing import render
from sysops.worker.toolkit.stats import QUARTILES_MIN_N, TAIL_MIN_N

register = template.Library()


@register.filter
def num(value: Any) -> str:
    """A measured number, readable: thousands separated, about four significant digits."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.1f}"
    if magnitude >= 1:
        return f"{value:.3g}" if magnitude < 10 else f"{value:.1f}"
    return f"{value:.3g}"


@register.filter
def percent(value: Any) -> str:
    try:
        return f"{float(value) * 100:.0f}%"
    except (TypeError, ValueError):
        return "—"


@register.filter
def status_label(value: str) -> str:
    return str(value).replace("_", " ")


@register.filter
def join_if_list(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


PANEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
PANELS_DIR = "sysops/panels"


@register.filter
def panel_template(detail: Any) -> str | None:
    """The template that draws a result row's ``detail`` (``{"panel": "<name>", ...}``), e.g.
    a packet diagram: ``sysops/panels/<name>.html`` when it exists, else None (the row still
    shows in the table). The name comes from the worker, so it is checked, never trusted."""
    name = detail.get("panel") if isinstance(detail, dict) else None
    if not isinstance(name, str) or not PANEL_NAME.match(name):
        return None
    path = f"{PANELS_DIR}/{name}.html"
    try:
        get_template(path)
    except TemplateDoesNotExist:
        return None
    return path


@register.filter
def observer_sentence(observer: Any) -> str:
    return render.observer_sentence(observer if isinstance(observer, dict) else None)


TAILS = {"p90": 0.9, "p99": 0.99, "p999": 0.999}
TOO_SMALL = "n too small"


def tail_text(dist: Any, name: str) -> str:
    """A tail percentile of a row's ``dist`` as text: its value, "n too small" where the
    sample count cannot tell it from the maximum (the worker leaves it None), "" without dist."""
    if not isinstance(dist, dict):
        return ""
    value = dist.get(name)
    return TOO_SMALL if value is None else num(value)


def spread_text(dist: Any) -> str:
    """How far the values spread around the median: the interquartile range where there are
    enough values for quartiles, else the standard deviation, else "n too small"."""
    if not isinstance(dist, dict):
        return ""
    if dist.get("q1") is not None and dist.get("q3") is not None:
        return f"{num(dist['q1'])}–{num(dist['q3'])}"
    if dist.get("stdev") is not None:
        return f"± {num(dist['stdev'])} sd"
    return TOO_SMALL


def _too_small(why: str) -> SafeString:
    return format_html('<span class="muted" title="{}">{}</span>', why, TOO_SMALL)


@register.filter
def tail(dist: Any, name: str) -> str | SafeString:
    text = tail_text(dist, name)
    if text != TOO_SMALL:
        return text
    need = TAIL_MIN_N[TAILS[name]]
    label = name.replace("p999", "p99.9")
    return _too_small(f"fewer than {need:,} values: a {label} would only be the maximum")


@register.filter
def spread(dist: Any) -> str | SafeString:
    text = spread_text(dist)
    if text != TOO_SMALL:
        return text
    return _too_small(f"fewer than {QUARTILES_MIN_N} values: no quartiles")


@register.filter
def has_ratios(rows: Any) -> bool:
    """True when some row has a ratio to the native layer: otherwise the column is left out."""
    return any(isinstance(r, dict) and r.get("ratio_to_native") is not None for r in rows or ())


@register.simple_tag
def submission_field() -> str:
    """A one-time token for a form that queues a run: the view queues one run per token, so a
    double click (or a resent POST) leads to the run the first click made."""
    return format_html(
        '<input type="hidden" name="submission" value="{}">', secrets.token_urlsafe(24)
    )


@register.filter
def signed(value: Any, digits: int | None = None) -> str:
    """A difference with its sign ("+3", "−1.5", "0"), for deltas against a baseline."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    text = f"{abs(value):,.{int(digits)}f}" if digits is not None else f"{abs(value):,}"
    if float(text.replace(",", "")) == 0:
        return "0"
    return ("+" if value > 0 else "−") + text
