"""Centre-line fits of a traced fold (emrepair.detection.fold_trace): a robust quadratic over the chord plus a
bounded piecewise-linear meander, and their evaluation."""

from __future__ import annotations

import numpy as np


def _quad(coeffs: tuple[float, float, float], s: np.ndarray) -> np.ndarray:
    """The parabola of ``coeffs`` at positions ``s``."""
    return coeffs[0] + coeffs[1] * s + coeffs[2] * s * s


def _evaluate(fit: tuple[tuple[float, float, float], tuple[np.ndarray, np.ndarray] | None],
              s: np.ndarray) -> np.ndarray:
    """Centre offsets of a (coeffs, detail) fit at positions ``s``."""
    coeffs, detail = fit
    out = _quad(coeffs, s)
    return out if detail is None else out + np.interp(s, detail[0], detail[1])


def _meander(s: np.ndarray, residual: np.ndarray, span: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Piecewise-linear knots (every tenth of the chord, at least 16 px) through the mean residuals, their
    size bounded as a gently curved fold's is (3 % of the chord + 2 px); None when below a pixel."""
    step = max(16.0, span / 10)
    knots = np.arange(0.0, span + step, step)
    which = np.clip(np.rint(s / step).astype(int), 0, knots.size - 1)
    counts = np.bincount(which, minlength=knots.size)
    sums = np.bincount(which, weights=residual, minlength=knots.size)
    ok = counts >= 3
    values = np.where(ok, sums / np.maximum(counts, 1), 0.0)
    if ok.sum() < 2:
        return None
    values = np.interp(knots, knots[ok], values[ok])
    bound = 0.03 * span + 2.0
    values = np.clip(values, -bound, bound)
    return (knots, values) if np.abs(values).max() >= 1.0 else None


def _fit(s: np.ndarray, c: np.ndarray, span: float):
    """Robust fit of centre offsets: a quadratic (when the points span most of the chord) plus a bounded
    piecewise-linear meander; returns (coeffs, detail or None)."""
    degree = 2 if (s.max() - s.min()) > 0.5 * span and s.size >= 8 else 1
    keep = np.ones(s.size, bool)
    fit: tuple = ((0.0, 0.0, 0.0), None)
    for round_ in range(3):
        poly = np.polyfit(s[keep], c[keep], degree)
        coeffs = np.zeros(3)
        coeffs[: degree + 1] = poly[::-1]
        coeffs = (float(coeffs[0]), float(coeffs[1]), float(coeffs[2]))
        detail = None
        if round_ > 0 and degree == 2 and keep.sum() >= 16:
            detail = _meander(s[keep], c[keep] - _quad(coeffs, s[keep]), span)
        fit = (coeffs, detail)
        residual = np.abs(c - _evaluate(fit, s))
        new_keep = residual < max(1.5, 2.5 * float(np.median(residual[keep])))
        if new_keep.sum() < degree + 2 or (round_ > 0 and np.array_equal(new_keep, keep)):
            break
        keep = new_keep
    return fit
