"""Whether a fold candidate is rather lost tissue: a dark band found along a torn edge, on a dropout stripe or
inside a larger lost area (the fold search runs before the lost regions are known)."""

from __future__ import annotations

import cv2
import numpy as np

from emrepair.detection.lost_regions import LostRegions

_POCKET_SHARE = 0.25  # tissue beyond a fold band holds at least this share of the band's area (else a pocket)
_IN_LOST = 0.5  # an untextured band with nothing beyond it and this share of its pixels in the lost region is lost
_ON_LINES = 0.6  # a band with this share of its pixels on lost stripe lines (and no texture there) is a stripe


def is_lost_not_fold(band: np.ndarray, regions: LostRegions, values: np.ndarray | None = None) -> bool:
    """Whether a dark band (a fold candidate; bool mask at any resolution) is rather lost tissue: mostly lost
    cells, with tissue on one side only (beyond a torn edge; a fold has the section on both sides of its band),
    made of whole rows or columns (a dropout stripe; folds run at any angle), or part of a lost area more than
    twice its size.

    ``values`` (the cleaned section, the shape of ``band`` or larger): when given, a band of whole rows or
    columns whose lost part keeps the tissue's texture (``band_textured`` over the band's pixels in lost cells:
    a fold darkens the tissue, a dropout leaves a flat or noise-filled line) is not taken for a stripe."""
    grid = regions.cells.shape
    cells = cv2.resize(band.astype(np.float32), (grid[1], grid[0]), interpolation=cv2.INTER_AREA) > 0.5
    area = int(cells.sum())
    lost = regions.core if regions.core is not None else regions.cells
    if regions.rows is not None or regions.cols is not None:  # stripes too, at the cells' resolution
        lines = LostRegions(np.zeros_like(lost), regions.cell, regions.shape, {}, None, regions.rows, regions.cols)
        on_lines = lines.mask(band.shape) & band
        if on_lines.sum() >= _ON_LINES * band.sum() and not (values is not None and band_textured(values, on_lines)):
            return True  # mostly on whole lost rows or columns (a thin dropout stripe is narrower than a cell)
        lost = lost | (cv2.resize(lines.mask().astype(np.float32), (grid[1], grid[0]),
                                  interpolation=cv2.INTER_AREA) > 0.5)
    if area == 0 or (cells & lost).sum() < 0.25 * area:
        return False
    full_rows = cells[cells.mean(axis=1) >= 0.85].sum() if cells.shape[1] else 0
    full_cols = cells[:, cells.mean(axis=0) >= 0.85].sum() if cells.shape[0] else 0
    # the texture of the band's lost part only: a candidate straddling a dropout stripe's edge takes in tissue
    inside_lost = band & (cv2.resize(lost.astype(np.uint8), band.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0)
    textured = values is not None and band_textured(values, inside_lost)
    stripe = (cells & lost).sum() >= 0.5 * area and max(full_rows, full_cols) >= 0.6 * area
    if stripe and not textured:
        return True
    # lost area reaching far beyond the band (twice its size) is not explained by it
    count, labels = cv2.connectedComponents(lost.astype(np.uint8), connectivity=8)
    touching = np.unique(labels[cells & lost])
    if count > 1 and np.isin(labels, touching[touching > 0]).sum() > 2 * area:
        return True
    if textured or _tissue_on_both_sides(band, regions):
        # darkened tissue, or a band with tissue beyond it (a fold across a corner): not the edge of a torn part
        return False
    if float(regions.mask(band.shape)[band].mean()) >= _IN_LOST:
        return True  # untextured, nothing beyond it, and mostly in the lost region: the torn part itself
    # width and length of the band in cells, from its area and its distance transform
    inside = cv2.distanceTransform(np.pad(cells, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    width = max(1.0, 2.0 * float(inside.max()))
    length = area / width
    # a band lying along the section's border (a torn corner or side) touches the border about as much as tissue
    tissue = ~cells & ~lost
    padded, open_ = np.pad(cells, 1), np.pad(tissue, 1)
    tissue_edges = sum(int((padded[1:-1, 1:-1] & np.roll(open_, shift, axis)[1:-1, 1:-1]).sum())
                       for shift, axis in ((1, 0), (-1, 0), (1, 1), (-1, 1)))
    border_edges = int(cells[0].sum() + cells[-1].sum() + cells[:, 0].sum() + cells[:, -1].sum())
    if border_edges >= 0.5 * tissue_edges:
        return True
    # the tissue just outside the band: on both sides along its length for a fold
    ring = (cv2.dilate(cells.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & tissue
    return float(ring.sum()) / (4.0 * length) < 0.75


def _tissue_on_both_sides(band: np.ndarray, regions: LostRegions, min_share: float = 0.002) -> bool:
    """Whether the tissue outside ``band`` (pixels neither in the band, grown by 2 px, nor in the lost cells
    found before growth) falls into at least two pieces of ``min_share`` of the section each: the band
    separates tissue from tissue, as a fold does even across a corner; a torn part has nothing beyond it. The
    second piece must also hold ``_POCKET_SHARE`` of the band's area: a pocket of tissue between a torn edge
    and a band drawn over the torn part does not count."""
    core = regions.core if regions.core is not None else regions.cells
    lost = cv2.resize(core.astype(np.uint8), band.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    tissue = ~(cv2.dilate(band.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & ~lost
    count, _, stats, _ = cv2.connectedComponentsWithStats(tissue.astype(np.uint8), connectivity=4)
    if count < 3:
        return False
    # a pocket of tissue left between a torn edge and a band drawn over it is small beside the band; what lies
    # beyond a fold, even across a corner, is about as large as the band or larger
    least = max(min_share * band.size, _POCKET_SHARE * float(np.count_nonzero(band)))
    return int(np.sort(stats[1:, cv2.CC_STAT_AREA])[-2]) >= least


def band_textured(values: np.ndarray, band: np.ndarray, min_autocorr: float = 0.3, min_nonflat: float = 0.6) -> bool:
    """Whether the pixels of ``band`` (bool mask, resized to ``values``' shape when it differs) keep a
    texture: not flat at ``min_nonflat`` of them (a near-black fold in 8-bit data has some flat pixels), and
    neighbouring band pixels correlated (lag-1 autocorrelation of their ranks, along rows or
    columns, at least ``min_autocorr``) as darkened tissue is; a dropout stripe is constant or i.i.d. noise."""
    if band.shape != values.shape:
        band = cv2.resize(band.astype(np.uint8), values.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    inside = values[band]
    if inside.size < 16:
        return False
    # not flat in places (a band straddling a torn edge is partly flat): a 3 x 3 range at min_nonflat of its pixels
    tiny = 1e-6 * max(1e-6, float(np.abs(values).max()))
    kernel = np.ones((3, 3), np.uint8)
    local = cv2.dilate(values, kernel) - cv2.erode(values, kernel)  # exact 0 where flat
    if float(np.mean(local[band] > tiny)) < min_nonflat or float(inside.std()) <= tiny:
        return False
    # on ranks (ties averaged): a few tissue pixels caught at a lost region's edge are bright outliers, which
    # would lend an i.i.d. dark fill the correlation of tissue
    _, inverse, counts = np.unique(inside, return_inverse=True, return_counts=True)
    ranked = np.zeros(values.shape, np.float64)
    ranked[band] = (np.cumsum(counts) - 0.5 * (counts - 1))[inverse.ravel()]
    best = -1.0
    for a, b, both in ((ranked[:, :-1], ranked[:, 1:], band[:, :-1] & band[:, 1:]),
                       (ranked[:-1], ranked[1:], band[:-1] & band[1:])):
        if int(both.sum()) < 16:
            continue
        x, y = a[both].astype(np.float64), b[both].astype(np.float64)
        x, y = x - x.mean(), y - y.mean()
        denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
        if denom > 0:
            best = max(best, float((x * y).sum()) / denom)
    return best >= min_autocorr
