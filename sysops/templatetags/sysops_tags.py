from __future__ import annotations

import re
import secrets
from typing import Any

from django import template
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils.html import format_html

from sysops.tracing import render

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
