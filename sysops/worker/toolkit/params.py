"""Bounded parameter checks for probes: the web form bounds every parameter, and the probe
checks again, since a probe must never run unbounded whatever reached it (the headless command,
a test, a forged job). Each check raises ValueError naming the parameter and its bounds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING: Any = object()


def bounded_int(
    params: Mapping[str, Any], name: str, low: int, high: int, default: int = _MISSING
) -> int:
    value = params.get(name, default)
    if value is _MISSING:
        raise ValueError(f"{name} is required (an integer in {low}..{high})")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def bounded_float(
    params: Mapping[str, Any], name: str, low: float, high: float, default: float = _MISSING
) -> float:
    value = params.get(name, default)
    if value is _MISSING:
        raise ValueError(f"{name} is required (a number in {low:g}..{high:g})")
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in {low:g}..{high:g}, got {value!r}")
    return float(value)


def choice(params: Mapping[str, Any], name: str, options: Iterable[T], default: T = _MISSING) -> T:
    options = tuple(options)
    value = params.get(name, default)
    if value is _MISSING or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(str, options))}, got {value!r}")
    return value


def subset(
    params: Mapping[str, Any], name: str, options: Sequence[T], default: Sequence[T] = _MISSING
) -> list[T]:
    """A non-empty subset of ``options``, in their canonical order, each at most once."""
    value = params.get(name, default)
    if value is _MISSING or isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list drawn from {', '.join(map(str, options))}")
    chosen = list(value)
    unknown = [item for item in chosen if item not in options]
    if unknown or not chosen:
        raise ValueError(
            f"{name} must be a non-empty subset of {', '.join(map(str, options))}, got {chosen!r}"
        )
    return [option for option in options if option in chosen]


def int_list(
    params: Mapping[str, Any], name: str, low: int, high: int, max_items: int
) -> list[int]:
    """Sweep points: 1..max_items distinct integers in low..high, sorted."""
    value = params.get(name)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of integers in {low}..{high}")
    items = list(value)
    if not 1 <= len(items) <= max_items or not all(
        not isinstance(v, bool) and isinstance(v, int) and low <= v <= high for v in items
    ):
        raise ValueError(f"{name} must be 1..{max_items} integers in {low}..{high}, got {items!r}")
    return sorted(set(items))


def flag(params: Mapping[str, Any], name: str, default: bool = False) -> bool:
    value = params.get(name, default)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value
