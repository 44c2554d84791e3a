"""Sweeps: one parameter stepped over points, a curve per variant, and the numbers a learner
wants from the curve: the least-squares slope (fork: µs per MiB of parent) and the point where
behaviour changes (select: the FD_SETSIZE cliff; a buffer size where throughput stops rising).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sysops.worker.emit import Emitter


@dataclass(frozen=True)
class Fit:
    slope: float
    intercept: float
    r2: float | None  # None when every y is the same (nothing to explain)

    def at(self, x: float) -> float:
        return self.slope * x + self.intercept


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> Fit:
    """Ordinary least squares y = slope·x + intercept (at least two distinct x)."""
    n = len(xs)
    if n != len(ys) or n < 2:
        raise ValueError("a line needs at least two points")
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("a line needs at least two distinct x values")
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    syy = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
    return Fit(slope, intercept, None if syy == 0 else 1 - residual / syy)


def change_point(xs: Sequence[float], ys: Sequence[float], *, log_x: bool = False) -> float | None:
    """The x after which a two-segment line fits best (the knee), or None with fewer than four
    points. ``log_x`` fits against log10(x), for sweeps over decades."""
    if len(xs) < 4:
        return None
    fx = [math.log10(x) for x in xs] if log_x else list(xs)
    best: tuple[float, float] | None = None
    for split in range(2, len(xs) - 1):
        cost = _sse(fx[:split], ys[:split]) + _sse(fx[split:], ys[split:])
        if best is None or cost < best[0]:
            best = (cost, xs[split - 1])
    return best[1] if best else None


def _sse(xs: Sequence[float], ys: Sequence[float]) -> float:
    if len(set(xs)) < 2:
        mean = sum(ys) / len(ys)
        return sum((y - mean) ** 2 for y in ys)
    fit = fit_line(xs, ys)
    return sum((y - fit.at(x)) ** 2 for x, y in zip(xs, ys, strict=True))


def sweep(
    points: Sequence[float],
    variants: Sequence[str],
    measure: Callable[[str, float], float | tuple[float, float] | None],
    emit: Emitter,
    *,
    label: Callable[[float], str] = lambda x: f"{x:g}",
) -> dict[str, list[tuple[float, float]]]:
    """For each point, for each variant (interleaved at every point), ``measure(variant, x)``;
    each value is emitted at once as a sample of the variant's series with x the swept value
    (a sweep point is slow enough that batching gains nothing and the curve grows live).
    ``measure`` returns y, or (x, y) where the point realised differs from the one asked for
    (a filter of 1,000 instructions asked, 999 built), or None where a variant cannot run at a
    point (select past FD_SETSIZE): nothing is recorded or drawn there, and the curve ends
    where the variant does. Returns variant -> [(x, y)]."""
    curves: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    total = len(points) * len(variants)
    done = 0
    for x in points:
        for variant in variants:
            value = measure(variant, x)
            if value is not None:
                at, y = value if isinstance(value, tuple) else (x, value)
                curves[variant].append((at, y))
                emit.sample(series=variant, x=at, y=y)
            done += 1
            emit.progress(done / total, f"{variant} at {label(x)}")
    return curves


def slope_row_fields(curve: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """``{slope, intercept, r2}`` of a curve, rounded for a result row's note or value."""
    fit = fit_line([x for x, _ in curve], [y for _, y in curve])
    return {
        "slope": round(fit.slope, 4),
        "intercept": round(fit.intercept, 3),
        "r2": None if fit.r2 is None else round(fit.r2, 3),
    }
