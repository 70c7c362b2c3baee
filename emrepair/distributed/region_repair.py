"""Region repair of partly lost sections: fuse synthesized pixels into the lost region and a seam around it.

The section's own pixels are kept everywhere farther than ``seam`` pixels from the region, bit for bit. Inside
the region the synthesized section (the same model and neighbours as for a missing section) is used, with its
mean matched to the section's own pixels beyond the seam (when the difference is well beyond its standard
error); across the seam the two are blended with a smooth weight falling from 1 (up to 8 px from the region) to
0 at ``seam`` pixels from it. Seam pixels that hold the region's
own fill (a constant or near-black level) are taken as lost and synthesized fully.

The same seam serves two other region kinds of the detection report: staining precipitates (fused like a lost
region, when asked for) and regional contrast changes, whose own pixels are corrected by a gain and offset
(``correct_contrast``) instead of being replaced.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from emrepair.detection.lost_regions import LostRegions
from emrepair.engine.intensity import match_contrast

SEAM_PX = 16  # width of the blend between the synthesized region and the section's own pixels
RING_PX = 48  # context beyond the seam read around a window, so that distances to the region are exact
_MIN_Z = 3.5  # a level offset is applied only this many standard errors from 0 (bench_partial repair, seed 1)
PLATEAU_PX = 8  # the first pixels of the seam are synthesized fully: they catch lost pixels just past a region cell


def region_of(geometry: dict[str, Any] | None) -> LostRegions | None:
    """The lost region stored in a run's per-section geometry (``{"region": {...}}``), or None."""
    if not geometry or geometry.get("region") is None:
        return None
    return LostRegions.from_dict(geometry["region"])


def seam_weights(region: LostRegions, ys: slice, xs: slice, shape: tuple[int, int],
                 seam: int = SEAM_PX) -> tuple[np.ndarray, np.ndarray]:
    """Blend weights of the synthesized pixels in window (ys, xs) and each pixel's distance to the region.

    The weight is 1 in the region and up to ``PLATEAU_PX`` (at most half the seam) beyond it, falls smoothly to
    0 at ``seam`` px from it and is exactly 0 beyond; the
    distance is exact up to ``seam + RING_PX`` (the window is widened by that much before measuring).
    """
    height, width = shape
    pad = seam + RING_PX
    wy = slice(max(0, ys.start - pad), min(height, ys.stop + pad))
    wx = slice(max(0, xs.start - pad), min(width, xs.stop + pad))
    lost = region.window(wy, wx)
    if not lost.any():
        distance = np.full((ys.stop - ys.start, xs.stop - xs.start), np.inf, np.float32)
        return np.zeros_like(distance), distance
    outside = (~lost).astype(np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    distance = distance[ys.start - wy.start: ys.stop - wy.start, xs.start - wx.start: xs.stop - wx.start]
    plateau = min(PLATEAU_PX, seam // 2)
    ramp = np.clip(1.0 - np.maximum(distance - plateau, 0.0) / float(max(seam - plateau, 1)), 0.0, 1.0)
    weights = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no kink at either end of the seam
    weights[distance >= seam] = 0.0
    return weights.astype(np.float32), distance


def fuse_region(own: np.ndarray, synth: np.ndarray, weights: np.ndarray, distance: np.ndarray,
                seam: int = SEAM_PX) -> tuple[np.ndarray, np.ndarray]:
    """The section with the synthesized pixels fused in, and the bool mask of the pixels that changed.

    ``own`` and ``synth`` are of the stored dtype; pixels with weight 0 are copied from ``own`` untouched.
    """
    ring = distance >= seam  # every own pixel beyond the seam (in the window)
    offset = _significant(match_contrast(synth, own, ring), synth, own, ring)
    weights = _fill_in_seam(own, weights, distance, seam)
    touched = weights > 0
    out = own.copy()
    if not touched.any():
        return out, touched
    w = weights[touched].astype(np.float64)
    s = synth[touched].astype(np.float64) + offset
    o = own[touched].astype(np.float64)
    blended = np.where(np.isfinite(o), w * s + (1.0 - w) * o, s)
    out[touched] = _stored(blended, own.dtype)
    changed = np.zeros(own.shape, bool)
    changed[touched] = out[touched] != own[touched]
    if np.dtype(own.dtype).kind == "f":
        changed[touched] |= np.isnan(own[touched]) != np.isnan(out[touched])
    return out, changed


def _significant(offset: float, synth: np.ndarray, own: np.ndarray, ring: np.ndarray,
                 min_z: float = _MIN_Z, cell_px: int = 64) -> float:
    """``offset``, or 0 when it is within ``min_z`` standard errors of 0: the own and synthesized sections'
    structures differ, and over a small ring their means differ by chance. The standard error counts one
    independent sample per ``cell_px`` pixels of the ring (neighbouring pixels are correlated)."""
    if offset == 0.0:
        return 0.0
    usable = ring & np.isfinite(own) & np.isfinite(synth) if own.dtype.kind == "f" else ring
    diff = own[usable].astype(np.float64) - synth[usable].astype(np.float64)
    if diff.size < 2 * cell_px:
        return 0.0
    error = float(diff.std()) / np.sqrt(diff.size / float(cell_px))
    return offset if abs(offset) >= min_z * error else 0.0


def _fill_in_seam(own: np.ndarray, weights: np.ndarray, distance: np.ndarray, seam: int,
                  max_spread: float = 0.05, min_pixels: int = 64) -> np.ndarray:
    """``weights`` with the seam's own pixels that hold the region's fill set to 1: they are lost too (a torn
    sliver narrower than a detection cell, a ragged edge beyond the region's cells), and blending them would
    carry the fill into the repair.

    The fill is the band from the 5th to the 50th percentile of the own pixels inside the region, widened by its
    width and 1 % of the window's 1-99 % range each side; it counts only when that band is narrow (at most
    ``max_spread`` of the range: black, white, a grey level or an empty film, not noise or tissue)."""
    inside = own[distance <= 0]
    if own.dtype.kind == "f":
        inside = inside[np.isfinite(inside)]
    seam_px = (distance > 0) & (distance < seam)
    if inside.size < min_pixels or not seam_px.any():
        return weights
    sample = own[::4, ::4]
    sample = sample[np.isfinite(sample)] if own.dtype.kind == "f" else sample
    lo, hi = (float(v) for v in np.percentile(sample, [1, 99]))
    scale = max(hi - lo, 1e-6)
    low, mid = (float(v) for v in np.percentile(inside, [5, 50]))
    if mid - low > max_spread * scale:
        return weights
    margin = (mid - low) + 0.01 * scale
    values = own.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        like = seam_px & (values >= low - margin) & (values <= mid + margin)
    if not like.any():
        return weights
    out = weights.copy()
    out[like] = 1.0
    return out


def _stored(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float64 pixel values in the stored dtype: rounded and clipped to its range for integers."""
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


class RegionFuser:
    """Fuses a run repairer's synthesized sections into the partly lost sections of a run, region by region.

    One region mask is decoded per section and kept while that section is at work.
    """

    def __init__(self, seam: int = SEAM_PX) -> None:
        if not 0 < int(seam) <= SEAM_PX:
            raise ValueError(f"the seam must be 1-{SEAM_PX} px, not {seam}")
        self.seam = int(seam)
        self._regions: dict[int, LostRegions | None] = {}

    def region(self, z: int, geometry: dict[str, Any] | None) -> LostRegions | None:
        """The lost region of section ``z`` (cached for the section at work)."""
        if z not in self._regions:
            self._regions.clear()
            self._regions[z] = region_of(geometry)
        return self._regions[z]

    def fuse(self, z: int, geometry: dict[str, Any] | None, own: np.ndarray, synth: np.ndarray, ys: slice,
             xs: slice, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
        """``own`` with ``synth`` fused into section ``z``'s lost region within window (ys, xs), and the mask of
        the region and its seam (the pixels it may change); None when the section has no region (it is then
        replaced whole)."""
        region = self.region(z, geometry)
        if region is None:
            return None
        if tuple(region.shape) != tuple(shape):
            raise ValueError(f"the lost region of section {z} was found in a {region.shape} section, "
                             f"not {tuple(shape)}")
        weights, distance = seam_weights(region, ys, xs, shape, self.seam)
        return fuse_region(own, synth, weights, distance, self.seam)[0], weights > 0


def correct_contrast(own: np.ndarray, reference: np.ndarray, weights: np.ndarray, distance: np.ndarray,
                     seam: int = SEAM_PX) -> tuple[np.ndarray, np.ndarray]:
    """``own`` with its contrast region (distance 0) corrected by a gain and offset fitted against
    ``reference`` (``models.regional_gain.region_gain_fit``), blended across the seam with ``weights``; and the
    mask of the pixels that changed. Pixels of weight 0 are copied untouched."""
    from emrepair.models.regional_gain import region_gain_fit

    inside, ring = distance <= 0, distance >= seam
    usable = np.isfinite(own) & np.isfinite(reference) if own.dtype.kind == "f" else np.ones(own.shape, bool)
    gain, offset = region_gain_fit(own[inside & usable], reference[inside & usable], own[ring & usable],
                                   reference[ring & usable])
    touched = weights > 0
    out = own.copy()
    if not touched.any() or (gain == 1.0 and offset == 0.0):
        return out, np.zeros(own.shape, bool)
    o = own[touched].astype(np.float64)
    w = weights[touched].astype(np.float64)
    blended = o + w * ((gain - 1.0) * o + offset)
    out[touched] = _stored(blended, own.dtype)
    changed = np.zeros(own.shape, bool)
    changed[touched] = out[touched] != own[touched]
    return out, changed
