"""Follow a candidate fold along its chord: perpendicular intensity profiles give its centre and width."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from emrepair.detection.fold_fit import _evaluate, _fit
from emrepair.detection.fold_geometry import FoldCurve

_OUTSIDE = 10.0  # ratio given to samples outside the image: bright, so never part of a band


@dataclass
class Trace:
    """The result of following a band: its fitted centre curve and how well the band fits it.

    Attributes:
        curve: fitted centre; ``s0``/``s1`` bound the longest well-covered stretch.
        width: median band width (pixels of the traced image).
        coverage: fraction of positions in [s0, s1] where a band of consistent width sits on the curve.
        band_ratio: median darkness of the band's centre relative to the section's median.
        width_spread: inter-quartile range of the widths divided by the median width.
        side_ratio: median level of the tissue just beside the band (the darker of its two sides).
        span: length of the stretch [s0, s1] as a fraction of the chord traced.
        level_spread: inter-quartile range of the band's centre level along it, over the side level.
        gap: the longest run of positions within [s0, s1] where the band was not covered, as a fraction of all
            positions along the chord (pieces of a broken band joined over it).
    """

    curve: FoldCurve
    width: float
    coverage: float
    band_ratio: float
    width_spread: float
    side_ratio: float = 1.0
    span: float = 1.0
    level_spread: float = 0.0
    gap: float = 0.0

    @property
    def contrast(self) -> float:
        """How much darker the band is than the tissue beside it (0 = not at all, 1 = black)."""
        return float(1.0 - self.band_ratio / max(self.side_ratio, 1e-6))


def _runs_at(dark: np.ndarray, pick: np.ndarray, profiles: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row, the sub-pixel left/right edges of the dark run containing column ``pick``, and validity."""
    k, m = dark.shape
    idx = np.arange(m)[None, :]
    bright = ~dark
    # the last bright sample at or before ``pick`` and the first at or after it (one reduction per side)
    left = np.where(bright & (idx <= pick[:, None]), idx, -1).max(axis=1) + 1
    right = np.where(bright & (idx >= pick[:, None]), idx, m).min(axis=1) - 1
    rows = np.arange(k)
    valid = (left > 0) & (right < m - 1)
    lc, rc = np.clip(left, 1, m - 1), np.clip(right, 0, m - 2)
    # linear interpolation of the threshold crossing between a bright and a dark sample
    out_l, in_l = profiles[rows, lc - 1], profiles[rows, lc]
    out_r, in_r = profiles[rows, rc + 1], profiles[rows, rc]
    frac_l = np.clip((out_l - threshold) / np.maximum(out_l - in_l, 1e-6), 0, 1)
    frac_r = np.clip((out_r - threshold) / np.maximum(out_r - in_r, 1e-6), 0, 1)
    return lc - frac_l, rc + frac_r, valid


def _longest_stretch(covered: np.ndarray, max_gap: int) -> tuple[int, int]:
    """First and last index of the longest run of True allowing gaps up to ``max_gap``; (-1, -1) if none."""
    where = np.flatnonzero(covered)
    if where.size == 0:
        return -1, -1
    breaks = np.flatnonzero(np.diff(where) > max_gap + 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [where.size - 1]])
    best = int(np.argmax(where[ends] - where[starts]))
    return int(where[starts[best]]), int(where[ends[best]])


def _profiles(ratio: np.ndarray, curve: FoldCurve, chord_length: float, half: int,
              count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` profiles of ``ratio`` across the chord, ``2 * half + 1`` samples each: (positions along the
    chord, offsets across it, the (count, 2 * half + 1) profiles; outside the image reads as ``_OUTSIDE``)."""
    s = np.linspace(0.0, chord_length, count, dtype=np.float32)
    o = np.arange(-half, half + 1, dtype=np.float32)
    t, n = curve.tangent.astype(np.float32), curve.normal.astype(np.float32)
    base_x = curve.origin[0] + s[:, None] * t[0] + o[None, :] * n[0]
    base_y = curve.origin[1] + s[:, None] * t[1] + o[None, :] * n[1]
    profiles = cv2.remap(ratio, base_x.astype(np.float32), base_y.astype(np.float32), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=_OUTSIDE)
    return s, o, profiles


def screen_band(ratio: np.ndarray, curve: FoldCurve, chord_length: float, half: int, tol: float,
                edge_ratio: float, width_range: tuple[float, float], max_gap: float,
                min_contrast: float = 0.25, smooth: int = 1) -> tuple[float, float]:
    """A quick look along a candidate's chord at 48 positions, before it is followed: the share of the
    longest stretch (gaps up to ``max_gap`` joined) with a dark run of a fold's width within ``tol`` of the
    chord that is ``min_contrast`` darker than both its sides, and that stretch's span as a fraction of the
    chord."""
    count = int(min(48, max(16, chord_length)))
    s, o, profiles = _profiles(ratio, curve, chord_length, half, count)
    if smooth > 1:
        profiles = cv2.blur(profiles, (1, max(1, smooth // 4) | 1), borderType=cv2.BORDER_REPLICATE)
    dark = profiles < edge_ratio
    distance = np.broadcast_to(np.abs(o)[None, :], dark.shape)
    candidates = np.where(dark & (distance <= tol), distance, np.inf)
    pick = candidates.argmin(axis=1)
    found = np.isfinite(candidates[np.arange(count), pick])
    left, right, bounded = _runs_at(dark, pick, profiles, edge_ratio)
    width = right - left
    valid = found & bounded & (width >= width_range[0]) & (width <= width_range[1])
    if valid.sum() < 4:
        return 0.0, 0.0
    rows = np.flatnonzero(valid)
    sides = _side_levels(profiles, rows, left[rows], right[rows], float(np.median(width[rows])))
    centres = profiles[rows, np.clip(np.rint((left[rows] + right[rows]) / 2).astype(int), 0, o.size - 1)]
    valid[rows] = ~(centres >= (1 - min_contrast) * sides)
    first, last = _longest_stretch(valid, max_gap=max(1, int(count * max_gap)))
    if first < 0:
        return 0.0, 0.0
    return float(valid[first:last + 1].mean()), float((s[last] - s[first]) / max(chord_length, 1e-6))


def trace_band(ratio: np.ndarray, curve: FoldCurve, chord_length: float, half: int, tol: float,
               edge_ratio: float, width_range: tuple[float, float], passes: int = 3,
               max_gap: float = 1 / 30, min_contrast: float = 0.25, samples: int = 256,
               consistent: bool = False, smooth: int = 1, seed: tuple[float, float] | None = None) -> Trace | None:
    """Follow a dark band near ``curve`` across ``ratio`` (intensity / median, black = 0).

    Profiles ``2 * half + 1`` samples long are taken perpendicular to the chord at up to ``samples`` positions along
    it; at each, the dark run (below ``edge_ratio``) nearest the predicted centre (within ``tol``) gives a
    centre and a width. The centre curve is refitted after each pass. Broken bands are joined over gaps of
    up to ``max_gap`` of the chord; a position is covered only where the band is at least ``min_contrast``
    darker than the tissue on both sides (and, when ``consistent``, within half to twice the median width).
    ``smooth`` > 1 averages that many neighbouring profiles first (a faint band is alike along its length,
    what crosses it is not). ``seed`` (s from, s to: where along the chord the band is known to lie on
    ``curve``, e.g. its Hough segment) makes the trace grow out from there (``_grow``) before the passes, so
    that a curved or wandering thin line is followed instead of the tissue beside the straight chord.
    Returns None when nothing is found.
    """
    if ratio.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {ratio.shape}")
    count = int(min(samples, max(16, chord_length)))
    s, o, profiles = _profiles(ratio, curve, chord_length, half, count)
    if smooth > 1:
        profiles = cv2.blur(profiles, (1, smooth), borderType=cv2.BORDER_REPLICATE)
    dark = profiles < edge_ratio
    fit = (curve.coeffs, curve.detail)
    if seed is not None:
        fit = _grow(s, profiles, dark, fit, half, tol, edge_ratio, width_range, seed, chord_length)
        if fit is None:
            return None
    centre = width = valid = None
    last = None  # the points the current fit was made from
    for _ in range(passes):
        left, right, found = _pick(profiles, dark, _evaluate(fit, s) + half, tol, edge_ratio)
        width = right - left
        centre = (left + right) / 2 - half
        valid = found & (width >= width_range[0]) & (width <= width_range[1])
        if valid.sum() < max(4, count // 10):
            return None
        if last is not None and np.array_equal(valid, last[0]) and np.array_equal(centre[valid], last[1]):
            break  # the same points give the same fit, and every later pass would repeat this one
        fit = _fit(s[valid], centre[valid], chord_length)
        last = (valid, centre[valid])
    fitted = _evaluate(fit, s)
    typical = float(np.median(width[valid]))
    covered = valid & (np.abs(centre - fitted) <= max(1.5, 0.25 * typical))
    if consistent:  # one band, not a chain of other things
        covered &= (width >= 0.5 * typical) & (width <= 2.0 * typical)
    first, last = _longest_stretch(covered, max_gap=max(2, int(count * max_gap)))
    if first < 0 or last - first < 3:
        return None
    stretch = covered[first:last + 1]
    inside = np.flatnonzero(stretch)
    gap = float(max(int(np.diff(inside).max(initial=1)) - 1, 0)) / count  # (as _longest_stretch counts it)
    widths = width[first:last + 1][stretch]
    rows = np.arange(first, last + 1)[stretch]
    cols = np.clip(np.rint(fitted[rows] + half).astype(int), 0, o.size - 1)
    q25, q50, q75 = np.percentile(widths, [25, 50, 75])
    sides = _side_levels(profiles, rows, left[rows], right[rows], q50)
    centres = profiles[rows, cols]
    # a position counts only where the band is darker than the tissue on both sides of it
    against = ~(centres >= (1 - min_contrast) * sides)
    known = sides[np.isfinite(sides)]
    side = float(np.median(known)) if known.size else 1.0
    return Trace(
        curve=FoldCurve(curve.origin.copy(), curve.tangent.copy(), fit[0], float(s[first]), float(s[last]), fit[1]),
        width=float(q50),
        coverage=float(against.sum() / stretch.size),
        band_ratio=float(np.median(centres)),
        width_spread=float((q75 - q25) / max(q50, 1e-6)),
        side_ratio=side,
        span=float((s[last] - s[first]) / max(chord_length, 1e-6)),
        level_spread=float(np.subtract(*np.percentile(centres, [75, 25])) / max(side, 1e-6)),
        gap=gap,
    )


def _pick(profiles: np.ndarray, dark: np.ndarray, predicted: np.ndarray, tol: float,
          edge_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per profile, the dark run nearest ``predicted`` (column) within ``tol``: (left edge, right edge, found
    and bounded)."""
    distance = np.abs(np.arange(profiles.shape[1])[None, :] - predicted[:, None])
    candidates = np.where(dark & (distance <= tol), distance, np.inf)
    pick = candidates.argmin(axis=1)
    found = np.isfinite(candidates[np.arange(profiles.shape[0]), pick])
    left, right, bounded = _runs_at(dark, pick, profiles, edge_ratio)
    return left, right, found & bounded


def _grow(s: np.ndarray, profiles: np.ndarray, dark: np.ndarray, fit, half: int, tol: float, edge_ratio: float,
          width_range: tuple[float, float], seed: tuple[float, float], span: float):
    """Fit the centre first where the band is known to be (``seed``), then over a stretch widened by a sixth of
    the chord on each side per round until it covers the chord, each round predicting from the last fit
    (a line while the stretch is short, so nothing is extrapolated far); None when the seed holds no band."""
    lo, hi = max(0.0, min(seed)), min(span, max(seed))
    step = max(span / 6, 8.0)
    grown = False
    for _ in range(8):
        inside = (s >= lo) & (s <= hi)
        predicted = _evaluate(fit, s) + half
        left, right, ok = _pick(profiles, dark, predicted, tol if not grown else max(2.0, tol / 2), edge_ratio)
        width = right - left
        centre = (left + right) / 2 - half
        valid = inside & ok & (width >= width_range[0]) & (width <= width_range[1])
        if valid.sum() < 4:
            return None if not grown else fit
        fit = _fit(s[valid], centre[valid], span)
        grown = True
        if lo <= 0.0 and hi >= span:
            break
        lo, hi = max(0.0, lo - step), min(span, hi + step)
    return fit


def _side_levels(profiles: np.ndarray, rows: np.ndarray, left: np.ndarray, right: np.ndarray,
                 width: float) -> np.ndarray:
    """Tissue level beside the band per row: the median of samples 2 to 2 + max(3, width) beyond each edge,
    the darker side (a side outside the image is ignored; NaN where both are)."""
    m = profiles.shape[1]
    k = np.arange(2, 2 + max(3, int(round(width))))  # noqa: RUF046 (width may be a numpy float)
    cols_l = np.floor(left)[:, None].astype(int) - k[None, :]
    cols_r = np.ceil(right)[:, None].astype(int) + k[None, :]
    levels = []
    for cols in (cols_l, cols_r):
        inside = (cols >= 0) & (cols < m)
        vals = profiles[rows[:, None], np.clip(cols, 0, m - 1)]
        ok = inside & (vals < _OUTSIDE - 1e-3)
        ordered = np.sort(np.where(ok, vals, np.inf), axis=1)
        n = ok.sum(axis=1)
        mid = ordered[np.arange(rows.size), np.maximum(n - 1, 0) // 2]
        levels.append(np.where(n > 0, mid, np.nan))
    return np.fmin(levels[0], levels[1])
