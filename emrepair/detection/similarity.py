"""Similarity of two sections that tolerates misalignment and contrast changes."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np


@lru_cache(maxsize=8)
def _window(h: int, w: int) -> np.ndarray:
    """Hanning window for phase correlation (cached: every pair in a volume has the same shape)."""
    return cv2.createHanningWindow((w, h), cv2.CV_32F)


def small_normalised(section: np.ndarray, side: int) -> np.ndarray | None:
    """A band-passed, zero-mean, unit-variance copy with long side about ``side``; None when textureless."""
    if section.ndim != 2:
        raise ValueError(f"expected a 2-D section, got shape {section.shape}")
    h, w = section.shape
    factor = max(1, int(round(max(h, w) / side)))
    small = cv2.resize(section, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    if min(small.shape) < 8:
        return None
    small = cv2.GaussianBlur(small, (0, 0), 1.0) - cv2.GaussianBlur(small, (0, 0), max(2.0, side / 16))
    std = float(small.std())
    if not np.isfinite(std) or std < 1e-6 * max(1.0, float(np.abs(section).mean())):
        return None
    return ((small - small.mean()) / std).astype(np.float32)


def _overlap_ncc(a: np.ndarray, b: np.ndarray, dx: int, dy: int) -> float:
    """NCC of ``a`` and ``b`` where ``b`` is displaced by (dx, dy) relative to ``a``."""
    h, w = a.shape
    pa = a[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
    pb = b[max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
    if pa.size < 0.25 * a.size:
        return 0.0
    pa = pa - pa.mean()
    pb = pb - pb.mean()
    denom = float(np.sqrt((pa * pa).sum() * (pb * pb).sum()))
    return float((pa * pb).sum() / denom) if denom > 0 else 0.0


def shift_tolerant_ncc(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Max of the NCC at zero shift and at the phase-correlation shift; 0 when either is textureless."""
    if a is None or b is None or a.shape != b.shape:
        return 0.0
    h, w = a.shape
    (sx, sy), _ = cv2.phaseCorrelate(a, b, _window(h, w))
    # phaseCorrelate reports where b's content sits relative to a's: a(y, x) ~ b(y + sy, x + sx)
    dx, dy = int(round(sx)), int(round(sy))
    best = _overlap_ncc(a, b, 0, 0)
    if abs(dx) < w // 3 and abs(dy) < h // 3 and (dx or dy):
        best = max(best, _overlap_ncc(a, b, -dx, -dy), _overlap_ncc(a, b, dx, dy))
    return best
