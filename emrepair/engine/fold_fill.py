"""A fold's band filled without a trace: what is left of the tissue under it, relit, blended with the neighbours.

A fold darkens its band but seldom erases it: under a faint fold most of the tissue is still there, under a dark
one a trace of it under the film's grain. Per band pixel, the share of its brightness the fold left is measured
(``attenuation``: local mean of the section over local mean of the neighbours' average, over the band pixels of
the same depth from the band's edge, so a soft or ragged rim and a washed-out stretch each get their own level);
band pixels that kept at least ``NOT_DARK`` of it are left as they are (a band mask wider than the dark band changes
nothing beside it). The others are relit (divided by that share) and blended with the neighbours' average (brought
to the level of the section's own pixels around the band, so the seam shows no step), an inpainting of the own
tissue around the band and a fold model's result, by the weights that minimise the expected error
(inverse-variance: ``e_ref`` is how far the neighbours' average is from the section's own pixels beside the band,
``e_relit`` the noise the relighting amplifies, measured in the band as the excess of ``(relit - reference)**2``
over ``e_ref``). A faint band thus keeps its own tissue, a near-black one takes the neighbours'.

``grow_band`` adds to a reported band the pixels next to it that are still clearly darker than the neighbours
(a band mask narrower than the dark band would otherwise leave a dark streak beside the repair).
"""

from __future__ import annotations

import cv2
import numpy as np

GROW_PX = 4  # a band mask is grown by at most this many pixels ...
GROW_RATIO = 0.6  # ... into pixels darker than this share of the neighbours' local level,
WIDE_GROW_PX = 40  # and by at most this many more into pixels darker than WIDE_GROW_RATIO of it (a band
WIDE_GROW_RATIO = 0.4  # reported far narrower than the dark band it lies on)
FILL_RADIUS = 12  # the model's error is measured over this radius
RING = (3, 24)  # the section's own pixels this far from the band set the reference's level ...
ERROR_RING = (32, 64)  # ... and these, beyond most of the pulled tissue, the reference's expected error
LEVEL_RADIUS = 48
MAX_GAIN = 60.0
DEPTH_EDGES = tuple(k + 0.5 for k in range(1, 9))  # band pixels of each depth (px from its edge) up to 8 px, and deeper, are relit apart
ATTEN_RADIUS = 16  # over band pixels of their depth class within this radius
NOT_DARK = 0.95  # band pixels that kept at least this share of their brightness are left as they are
PAINT_MARGIN = 2


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _ring(band: np.ndarray, radii: tuple[int, int]) -> np.ndarray:
    """Pixels between ``radii[0]`` and ``radii[1]`` px (disks) from the band; all off-band pixels if too few."""
    near = cv2.dilate(band.astype(np.uint8), _disk(radii[1])) > 0
    inner = cv2.dilate(band.astype(np.uint8), _disk(radii[0])) > 0
    ring = near & ~inner
    return ring if ring.sum() >= 64 else ~band


def local_mean(values: np.ndarray, mask: np.ndarray, radius: int) -> np.ndarray:
    """Mean of ``values`` over the ``mask`` pixels within a (2r+1)^2 box of each pixel (0 where none)."""
    size = (2 * radius + 1, 2 * radius + 1)
    weight = mask.astype(np.float32)
    num = cv2.boxFilter(values.astype(np.float32) * weight, -1, size, normalize=False,
                        borderType=cv2.BORDER_REFLECT)
    den = cv2.boxFilter(weight, -1, size, normalize=False, borderType=cv2.BORDER_REFLECT)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0.5)


def grow_band(folded: np.ndarray, reference: np.ndarray, band: np.ndarray) -> np.ndarray:
    """``band`` grown by ``GROW_PX`` into dark pixels (``GROW_RATIO``), then by ``WIDE_GROW_PX`` more into very dark
    ones (``WIDE_GROW_RATIO``); see :func:`grow_dark`."""
    grown = grow_dark(folded, reference, band, GROW_PX, GROW_RATIO)
    return grow_dark(folded, reference, grown, WIDE_GROW_PX, WIDE_GROW_RATIO)


def grow_dark(folded: np.ndarray, reference: np.ndarray, band: np.ndarray, max_px: int, ratio: float
              ) -> np.ndarray:
    """``band`` plus the pixels connected to it, at most ``max_px`` away, whose 3x3 mean is darker than
    ``ratio`` times the reference's local (9x9) mean."""
    everywhere = np.ones(band.shape, bool)
    dark = local_mean(folded, everywhere, 1) < ratio * local_mean(reference, everywhere, 4)
    grown = band.copy()
    step = _disk(1)
    for _ in range(max_px):
        nxt = ((cv2.dilate(grown.astype(np.uint8), step) > 0) & dark) | band
        if np.array_equal(nxt, grown):
            break
        grown = nxt
    return grown


def level_reference(folded: np.ndarray, reference: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference brought to the level of the section's own pixels around the band (one offset, with the
    region fuser's dead zone: ``intensity.match_contrast``), and its expected squared error per pixel
    (from own pixels ``ERROR_RING`` px from the band, beyond most of the pulled tissue)."""
    from emrepair.engine.intensity import match_contrast

    ring = _ring(band, RING)
    leveled = reference + np.float32(match_contrast(reference, folded, ring))
    far = _ring(band, ERROR_RING)
    error = local_mean((folded - leveled) ** 2, far, ERROR_RING[1])
    fallback = float(np.mean((folded[far] - leveled[far]) ** 2)) if far.any() else 1e-3
    error = np.where(error > 0, error, fallback)
    return leveled.astype(np.float32), np.maximum(error, 1e-5).astype(np.float32)


def _paint(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mask`` inpainted from the pixels around it (OpenCV Telea; its float path is unreliable, so 16-bit)."""
    as16 = np.rint(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
    return cv2.inpaint(as16, mask.astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32) / 65535.0


def spatial_fill(folded: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The band inpainted from the section's own pixels around it, and the expected squared error per band pixel.

    The error is measured, not assumed: copies of the band shifted diagonally by twice its depth plus a margin
    onto the section's own tissue are inpainted in the same call, and the squared error there, per depth from
    the mask's edge, is the estimate for band pixels of that depth.
    """
    h, w = band.shape
    # paint from beyond the band's soft, half-dark rim; depths are counted from that wider mask's edge
    band = cv2.dilate(band.astype(np.uint8), _disk(PAINT_MARGIN)) > 0
    depth = cv2.distanceTransform(np.pad(band, 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    lags = int(min(64, max(2, np.ceil(depth.max()))))
    shift = 2 * lags + 8
    keep_off = cv2.dilate(band.astype(np.uint8), _disk(4)) > 0
    test = np.zeros_like(band)
    test_depth = np.zeros(band.shape, np.float32)
    for dy in (-shift, shift):
        for dx in (-shift, shift):
            moved = np.zeros_like(band)
            moved_depth = np.zeros(band.shape, np.float32)
            ys, yd = slice(max(0, dy), h + min(0, dy)), slice(max(0, -dy), h + min(0, -dy))
            xs, xd = slice(max(0, dx), w + min(0, dx)), slice(max(0, -dx), w + min(0, -dx))
            moved[ys, xs] = band[yd, xd]
            moved_depth[ys, xs] = depth[yd, xd]
            moved &= ~keep_off & ~test
            test |= moved
            test_depth = np.where(moved, moved_depth, test_depth)
    painted = _paint(folded, band | test)
    index = np.clip(np.ceil(depth), 1, lags).astype(int)
    error = np.full(lags + 1, np.nan, np.float64)
    if test.any():
        sq = ((painted - folded)[test] ** 2).astype(np.float64)
        bins = np.clip(np.ceil(test_depth[test]), 1, lags).astype(int)
        sums, counts = np.bincount(bins, sq, lags + 1), np.bincount(bins, None, lags + 1)
        error = np.divide(sums, counts, out=np.full(lags + 1, np.nan), where=counts >= 16)
    # unmeasured depths: the deepest measured error (inpainting only gets worse with depth), else none usable
    valid = np.isfinite(error)
    error = np.maximum.accumulate(np.where(valid, error, 0.0)) if valid.any() else np.full(lags + 1, 1e3)
    error[~valid & (np.arange(lags + 1) > np.flatnonzero(valid).max(initial=0))] = 1e3 if not valid.any() else \
        error[np.flatnonzero(valid).max()]
    return painted.astype(np.float32), np.maximum(error[index], 1e-6).astype(np.float32)


def attenuation(folded: np.ndarray, leveled: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Per band pixel, the share of the tissue's brightness the fold left: local mean of the section over local
    mean of the leveled reference, taken over the band pixels of the same depth (``DEPTH_EDGES``, px from the
    band's edge) within ``ATTEN_RADIUS``, so a soft or ragged rim, a washed-out stretch and band pixels that are
    not dark at all each get their own level; 1 off the band."""
    # the section's border is no edge of the band: a band that runs off the section keeps its depth there
    depth = cv2.distanceTransform(band.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    bins = np.digitize(depth, DEPTH_EDGES)
    out = np.ones(band.shape, np.float32)
    for k in range(len(DEPTH_EDGES) + 1):
        sel = band & (bins == k)
        if not sel.any():
            continue
        f_mean = local_mean(folded, sel, ATTEN_RADIUS)
        r_mean = local_mean(leveled, sel, ATTEN_RADIUS)
        ratio = np.divide(f_mean, r_mean, out=np.ones_like(f_mean), where=r_mean > 1e-3)
        out[sel] = ratio[sel]
    return np.clip(out, 1.0 / MAX_GAIN, 1.0)


def fill_band(folded: np.ndarray, reference: np.ndarray, band: np.ndarray, model: np.ndarray | None = None
              ) -> np.ndarray:
    """The section with ``band`` filled (see the module docstring); pixels off the band, and band pixels the fold
    left at least ``NOT_DARK`` of their brightness, are returned as given.

    Args:
        folded: (H, W) float32 in [0, 1], the folded section (pulled tissue already pushed back, if any).
        reference: (H, W) float32, the neighbours' average.
        band: (H, W) bool, the pixels to fill.
        model: (H, W) float32, a fold model's result, a fourth estimate (its error measured like the relit
            section's: the excess of its squared difference from the reference over the reference's error).
    """
    out = folded.astype(np.float32).copy()
    if not band.any():
        return out
    leveled, e_ref = level_reference(out, reference, band)
    kept = attenuation(out, leveled, band)
    dark = band & (kept < NOT_DARK)
    if not dark.any():
        return out
    relit = out / kept
    # the relit pixels' error, per depth class like their gain: the excess of their squared difference from the
    # reference over the reference's own error
    e_relit = np.zeros(band.shape, np.float32)
    depth_bins = np.digitize(cv2.distanceTransform(band.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE),
                             DEPTH_EDGES)
    for k in range(len(DEPTH_EDGES) + 1):
        sel = band & (depth_bins == k)
        if sel.any():
            e_relit[sel] = local_mean((relit - leveled) ** 2, sel, ATTEN_RADIUS)[sel]
    e_relit = np.maximum(e_relit - e_ref, 1e-6)
    painted, e_paint = spatial_fill(out, dark)
    # inverse-variance blend of the estimates (their errors taken as independent)
    w_ref, w_relit, w_paint = 1.0 / e_ref, 1.0 / e_relit, 1.0 / e_paint
    total = w_ref * leveled + w_relit * relit + w_paint * painted
    weights = w_ref + w_relit + w_paint
    if model is not None:
        w_model = 1.0 / np.maximum(local_mean((model - leveled) ** 2, band, FILL_RADIUS) - e_ref, 1e-6)
        total, weights = total + w_model * model, weights + w_model
    estimate = total / weights
    out[dark] = np.clip(estimate[dark], 0.0, 1.0)
    return out
