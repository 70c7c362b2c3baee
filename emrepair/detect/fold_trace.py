"""Follow a candidate fold along its chord: perpendicular intensity profiles give its centre and width."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from emrepair.detect.fold_geometry import FoldCurve

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
    """

    curve: FoldCurve
    width: float
    coverage: float
    band_ratio: float
    width_spread: float


def _runs_at(dark: np.ndarray, pick: np.ndarray, profiles: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row, the sub-pixel left/right edges of the dark run containing column ``pick``, and validity."""
    k, m = dark.shape
    idx = np.broadcast_to(np.arange(m), (k, m))
    last_bright = np.maximum.accumulate(np.where(~dark, idx, -1), axis=1)
    first_bright = np.minimum.accumulate(np.where(~dark, idx, m)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(k)
    left = last_bright[rows, pick] + 1
    right = first_bright[rows, pick] - 1
    valid = (left > 0) & (right < m - 1)
    lc, rc = np.clip(left, 1, m - 1), np.clip(right, 0, m - 2)
    # linear interpolation of the threshold crossing between a bright and a dark sample
    out_l, in_l = profiles[rows, lc - 1], profiles[rows, lc]
    out_r, in_r = profiles[rows, rc + 1], profiles[rows, rc]
    frac_l = np.clip((out_l - threshold) / np.maximum(out_l - in_l, 1e-6), 0, 1)
    frac_r = np.clip((out_r - threshold) / np.maximum(out_r - in_r, 1e-6), 0, 1)
    return lc - frac_l, rc + frac_r, valid


def _fit(s: np.ndarray, c: np.ndarray, span: float) -> tuple[float, float, float]:
    """Robust polynomial fit of centre offsets: quadratic when the points span most of the chord."""
    degree = 2 if (s.max() - s.min()) > 0.5 * span and s.size >= 8 else 1
    keep = np.ones(s.size, bool)
    coeffs = np.zeros(3)
    for _ in range(3):
        fit = np.polyfit(s[keep], c[keep], degree)
        coeffs = np.zeros(3)
        coeffs[: degree + 1] = fit[::-1]
        residual = np.abs(c - (coeffs[0] + coeffs[1] * s + coeffs[2] * s * s))
        new_keep = residual < max(1.5, 2.5 * float(np.median(residual[keep])))
        if new_keep.sum() < degree + 2 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return float(coeffs[0]), float(coeffs[1]), float(coeffs[2])


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


def trace_band(ratio: np.ndarray, curve: FoldCurve, chord_length: float, half: int, tol: float,
               edge_ratio: float, width_range: tuple[float, float], passes: int = 3) -> Trace | None:
    """Follow a dark band near ``curve`` across ``ratio`` (intensity / median, black = 0).

    Profiles ``2 * half + 1`` samples long are taken perpendicular to the chord at up to 256 positions along
    it; at each, the dark run (below ``edge_ratio``) nearest the predicted centre (within ``tol``) gives a
    centre and a width. The centre curve is refitted after each pass. Returns None when nothing is found.
    """
    if ratio.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {ratio.shape}")
    count = int(min(256, max(16, chord_length)))
    s = np.linspace(0.0, chord_length, count, dtype=np.float32)
    o = np.arange(-half, half + 1, dtype=np.float32)
    t, n = curve.tangent.astype(np.float32), curve.normal.astype(np.float32)
    base_x = curve.origin[0] + s[:, None] * t[0] + o[None, :] * n[0]
    base_y = curve.origin[1] + s[:, None] * t[1] + o[None, :] * n[1]
    profiles = cv2.remap(ratio, base_x.astype(np.float32), base_y.astype(np.float32), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=_OUTSIDE)
    dark = profiles < edge_ratio
    coeffs = curve.coeffs
    centre = width = valid = None
    for _ in range(passes):
        predicted = coeffs[0] + coeffs[1] * s + coeffs[2] * s * s + half
        distance = np.abs(np.arange(o.size)[None, :] - predicted[:, None])
        candidates = np.where(dark & (distance <= tol), distance, np.inf)
        pick = candidates.argmin(axis=1)
        found = np.isfinite(candidates[np.arange(count), pick])
        left, right, bounded = _runs_at(dark, pick, profiles, edge_ratio)
        width = right - left
        centre = (left + right) / 2 - half
        valid = found & bounded & (width >= width_range[0]) & (width <= width_range[1])
        if valid.sum() < max(4, count // 10):
            return None
        coeffs = _fit(s[valid], centre[valid], chord_length)
    fitted = coeffs[0] + coeffs[1] * s + coeffs[2] * s * s
    covered = valid & (np.abs(centre - fitted) <= max(1.5, 0.25 * float(np.median(width[valid]))))
    first, last = _longest_stretch(covered, max_gap=max(2, count // 30))
    if first < 0 or last - first < 3:
        return None
    stretch = covered[first:last + 1]
    widths = width[first:last + 1][stretch]
    rows = np.arange(first, last + 1)[stretch]
    cols = np.clip(np.rint(fitted[rows] + half).astype(int), 0, o.size - 1)
    q25, q50, q75 = np.percentile(widths, [25, 50, 75])
    return Trace(
        curve=FoldCurve(curve.origin.copy(), curve.tangent.copy(), coeffs, float(s[first]), float(s[last])),
        width=float(q50),
        coverage=float(stretch.mean()),
        band_ratio=float(np.median(profiles[rows, cols])),
        width_spread=float((q75 - q25) / max(q50, 1e-6)),
    )
