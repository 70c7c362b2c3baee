"""A fold's band as pixels: segmented from the section around its traced centre, not drawn with one width.

Within a corridor around the fitted centre curve (the traced width plus a margin, over the whole chord),
a pixel belongs to the band when it is darker than halfway between the band's own level and the tissue
beside it; only dark pixels connected to the centre line count, so a membrane or mitochondrion touching
the corridor is not taken in. Ragged edges, a width that changes along the fold, knots and a band cut by
the section border are followed because the pixels decide, not the width.
"""

from __future__ import annotations

import cv2
import numpy as np

from emrepair.detection.fold_geometry import FoldCurve


def _frame(curve: FoldCurve, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Along-chord and across-centre coordinates of the pixels of ``box`` (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = box
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    rel_x, rel_y = xx - np.float32(curve.origin[0]), yy - np.float32(curve.origin[1])
    t, n = curve.tangent.astype(np.float32), curve.normal.astype(np.float32)
    along = rel_x * t[0] + rel_y * t[1]
    across = rel_x * n[0] + rel_y * n[1] - curve.offset(along).astype(np.float32)
    return along, across


def _box(curve: FoldCurve, shape: tuple[int, int], reach: float, s0: float, s1: float) -> tuple[int, int, int, int]:
    """Bounding box (y0, y1, x0, x1) of the corridor ``reach`` around the curve between s0 and s1."""
    h, w = shape
    pts = curve.points(np.linspace(s0, s1, 64))
    x0, y0 = np.floor(pts.min(axis=0) - reach - 1).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0) + reach + 2).astype(int)
    return max(0, y0), min(h, y1), max(0, x0), min(w, x1)


def segment_band(ratio: np.ndarray, curve: FoldCurve, width: float, band_ratio: float, side_ratio: float,
                 chord: float) -> np.ndarray:
    """Boolean (H, W) band of one fold in ``ratio`` (intensity over the local tissue; full resolution).

    ``curve``/``width`` come from the full-resolution trace, ``band_ratio``/``side_ratio`` are the band's and
    its sides' levels, ``chord`` the length of the curve's chord inside the image.
    """
    h, w = ratio.shape
    reach = 0.75 * width + max(3.0, 0.25 * width)
    span = curve.s1 - curve.s0
    # a fold crossing most of the section crosses all of it: extend the corridor to both borders
    s0, s1 = (0.0, chord) if span > 0.7 * chord else (curve.s0 - width, curve.s1 + width)
    box = _box(curve, (h, w), reach, s0, s1)
    y0, y1, x0, x1 = box
    if y1 <= y0 or x1 <= x0:
        return np.zeros((h, w), bool)
    along, across = _frame(curve, box)
    crop = ratio[y0:y1, x0:x1]
    if width >= 6:
        crop = cv2.blur(crop, (3, 3))
    level = float(np.clip(band_ratio, 0.0, side_ratio))
    threshold = np.float32(level + 0.5 * (side_ratio - level))
    corridor = (np.abs(across) <= reach) & (along >= s0 - 1) & (along <= s1 + 1)
    dark = corridor & (crop < threshold)
    core = dark & (np.abs(across) <= max(1.0, 0.25 * width))
    count, labels = cv2.connectedComponents(dark.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros((h, w), bool)
    touching = np.zeros(count, bool)
    touching[np.unique(labels[core])] = True
    touching[0] = False
    band = touching[labels]
    if width >= 4:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        band = cv2.morphologyEx(band.astype(np.uint8), cv2.MORPH_CLOSE, kernel) > 0
        band &= corridor
    out = np.zeros((h, w), bool)
    out[y0:y1, x0:x1] = band
    return out


def union_mask(masks: list[np.ndarray], shape: tuple[int, int], max_side: int) -> np.ndarray:
    """Union of full-resolution band masks, resized so that its long side is at most ``max_side``."""
    full = np.zeros(shape, bool)
    for mask in masks:
        full |= mask
    scale = min(1.0, max_side / max(shape))
    if scale >= 1.0:
        return full
    small = (max(1, int(round(shape[1] * scale))), max(1, int(round(shape[0] * scale))))
    return cv2.resize(full.astype(np.float32), small, interpolation=cv2.INTER_AREA) >= 0.5
