"""Staining precipitates: small near-black blobs and flakes that the neighbouring sections do not share.

Stain precipitates (Deng et al., TMI 2022) sit on one section: its neighbours show tissue at the same place.
Mitochondria, membranes and folds are greyer and persist in z. A precipitate here is a component of pixels darker
than ``precipitate_dark`` of the section's median that survives an opening of ``precipitate_open_px`` (thin
membranes do not), of ``precipitate_min_px`` area up to a ``precipitate_max_px`` extent, compact (its widest
inscribed disc at least ``precipitate_thickness`` of the radius of a disc of its area), whose darkest
blob-sized patch is at least ``precipitate_persist`` (of the median) darker than the darkest such patch of each
usable neighbour at the same place, after the neighbour is aligned by phase correlation (within a few pixels of
residual; within ``precipitate_shift_px`` when not aligned). Only sections with two usable neighbours are judged
(one section, or one neighbour, cannot tell a precipitate from dark tissue well enough: the first and last
sections never are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from emrepair.detection.damage_config import DamageConfig
from emrepair.detection.lost_regions import LostRegions


@dataclass
class Work:
    """A section's working copy for the damage detectors: ``image`` at 1/``factor`` of the full resolution (the
    full-resolution cropped to whole factors), its black level and median, and the section's full shape."""

    image: np.ndarray
    factor: int
    black: float
    median: float
    shape: tuple[int, int]
    cache: dict = field(default_factory=dict, repr=False)  # measures of the copy kept while it is in the window

    def relative(self, level: np.ndarray | float) -> np.ndarray | float:
        """Intensity as a fraction of the way from black to the median."""
        return (level - self.black) / max(self.median - self.black, 1e-6)


def work_copy(values: np.ndarray, black: float, median: float, side: int) -> Work:
    """The working copy of a cleaned float32 section (``section_stats.clean_section``): long side at most
    ``side`` px."""
    h, w = values.shape
    factor = max(1, math.ceil(max(h, w) / side))
    if factor == 1:
        return Work(values, 1, black, median, (h, w))
    gh, gw = max(1, h // factor), max(1, w // factor)
    image = cv2.resize(values[: gh * factor, : gw * factor], (gw, gh), interpolation=cv2.INTER_AREA)
    return Work(image, factor, black, median, (h, w))


@dataclass
class Blob:
    """A dark compact component of a working copy: its pixels' label in ``labels``, bounding box (work px)."""

    label: int
    y0: int
    x0: int
    y1: int
    x1: int
    area: int


def _no_blobs(work: Work) -> tuple[np.ndarray, list[Blob]]:
    """``candidates``' answer when nothing is dark: an empty label image and no blobs (made only then)."""
    return np.zeros(work.image.shape, np.int32), []


def _brighter_than(image: np.ndarray, threshold: float) -> bool:
    """Whether every pixel of ``image`` (and so every weighted mean of its pixels, such as a blur of it) lies
    above ``threshold``, with a margin of 1e-4 of the largest magnitude for float32 rounding in the blur."""
    if image.size == 0 or image.ndim != 2:
        return False
    low, high, _, _ = cv2.minMaxLoc(image)
    return low > threshold + 1e-4 * max(abs(low), abs(high), 1.0)


def candidates(work: Work, config: DamageConfig, exclude: np.ndarray | None = None) -> tuple[np.ndarray, list[Blob]]:
    """The near-black compact components of ``work`` (label image, blobs); ``exclude`` (bool, work size) marks
    areas known to be something else (fold bands, lost regions): a blob touching them is dropped."""
    f = work.factor
    threshold = work.black + config.precipitate_dark * (work.median - work.black)
    if _brighter_than(work.image, threshold):
        return _no_blobs(work)
    # judged on a lightly smoothed copy: a grainy stain is dark as a whole, not pixel by pixel
    smooth = cv2.GaussianBlur(work.image, (0, 0), max(0.5, 1.0 / f), borderType=cv2.BORDER_REFLECT)
    dark = (smooth < threshold).astype(np.uint8)
    if not dark.any():
        return _no_blobs(work)
    radius = max(1, round(config.precipitate_open_px / f))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    core = cv2.morphologyEx(dark, cv2.MORPH_OPEN, disk)
    if not core.any():
        return _no_blobs(work)
    core = cv2.dilate(core, disk) & dark  # the opened cores with the rim the opening took off
    _, labels, stats = _components(core)
    min_area = config.precipitate_min_px / (f * f)
    max_extent = config.precipitate_max_px / f
    near = None
    if exclude is not None and exclude.any():
        near = cv2.dilate(exclude.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    blobs = []
    sized = (stats[:, cv2.CC_STAT_AREA] >= min_area) \
        & (np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) <= max_extent)
    for i in (np.flatnonzero(sized[1:]) + 1).tolist():
        x0, y0, bw, bh, area = (int(v) for v in stats[i])
        own = labels[y0:y0 + bh, x0:x0 + bw] == i
        if near is not None and near[y0:y0 + bh, x0:x0 + bw][own].any():
            continue
        inner = cv2.distanceTransform(np.pad(own, 1).astype(np.uint8), cv2.DIST_L2, 3).max()
        if inner < config.precipitate_thickness * math.sqrt(area / math.pi):
            continue  # a thin crescent or band (a thick membrane), not a compact blob
        blobs.append(Blob(i, y0, x0, y0 + bh, x0 + bw, area))
    return labels, blobs


def _components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """``cv2.connectedComponentsWithStats(mask, connectivity=8)`` without the centroids and the background's
    row of statistics (left zero): labels, then each label's bounding box and area from its pixels' coordinates
    (a few per cent of the image), which costs a third of OpenCV's full statistics pass."""
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    stats = np.zeros((count, 5), np.int32)
    if count < 2:
        return count, labels, stats
    points = cv2.findNonZero(mask).reshape(-1, 2)
    order = np.argsort(labels[points[:, 1], points[:, 0]], kind="stable")
    points = points[order]
    owner = labels[points[:, 1], points[:, 0]]
    starts = np.searchsorted(owner, np.arange(1, count))
    low, high = np.minimum.reduceat(points, starts), np.maximum.reduceat(points, starts)
    stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_TOP] = low[:, 0], low[:, 1]
    stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT] = (high - low + 1).T
    stats[1:, cv2.CC_STAT_AREA] = np.diff(np.append(starts, owner.size))
    return count, labels, stats


def _darkest_patch(image: np.ndarray, side: int) -> float:
    """Mean of the darkest ``side`` x ``side`` patch of ``image``."""
    side = max(1, min(side, *image.shape))
    return float(cv2.blur(image, (side, side), borderType=cv2.BORDER_REFLECT).min())


_ALIGN_SIDE = 256  # long side of the copies whose phase correlation aligns a neighbour
_RESIDUAL_PX = 8  # misalignment left after that (full-resolution px), besides the copies' own pixel


def _aligning_copy(work: Work, size: tuple[int, int]) -> np.ndarray:
    """The working copy area-resampled to ``size`` (w, h), zero-mean: made once per copy (a section is aligned as
    itself and as the neighbour of the two next to it)."""
    key = ("align", size)
    if key not in work.cache:
        small = cv2.resize(work.image, size, interpolation=cv2.INTER_AREA)
        work.cache[key] = small - float(small.mean())
    return work.cache[key]


def neighbour_shift(work: Work, other: Work) -> tuple[int, int]:
    """(dy, dx) in work px such that ``other`` at (y + dy, x + dx) shows what ``work`` shows at (y, x); (0, 0)
    when the phase correlation is not confident."""
    h, w = work.image.shape
    step = max(1, math.ceil(max(h, w) / _ALIGN_SIDE))
    size = (max(1, w // step), max(1, h // step))
    window = cv2.createHanningWindow(size, cv2.CV_32F)
    (sx, sy), response = cv2.phaseCorrelate(_aligning_copy(work, size), _aligning_copy(other, size), window)
    if response < 0.05:
        return 0, 0
    return round(sy * step), round(sx * step)


def is_transient(work: Work, blob: Blob, neighbours: list[Work], config: DamageConfig,
                 shifts: list[tuple[int, int]] | None = None) -> bool:
    """Whether every neighbour is clearly lighter than ``blob`` around its place (it does not persist in z).

    ``shifts``: each neighbour's (dy, dx) (``neighbour_shift``); the place is searched within
    ``precipitate_shift_px`` of the blob when not given, within the residual of the alignment when given.
    """
    if not neighbours:
        return False
    side = max(3, int(math.sqrt(blob.area)))
    own = work.relative(_darkest_patch(work.image[blob.y0:blob.y1, blob.x0:blob.x1], side))
    for k, other in enumerate(neighbours):
        h, w = other.image.shape
        if shifts is None:
            dy, dx, reach = 0, 0, max(1, round(config.precipitate_shift_px / work.factor))
        else:
            (dy, dx), step = shifts[k], max(1, math.ceil(max(h, w) / _ALIGN_SIDE))
            reach = max(1, round(_RESIDUAL_PX / work.factor)) + step
        ys = slice(max(0, blob.y0 + dy - reach), min(h, blob.y1 + dy + reach))
        xs = slice(max(0, blob.x0 + dx - reach), min(w, blob.x1 + dx + reach))
        if ys.stop <= ys.start or xs.stop <= xs.start:
            return False
        theirs = other.relative(_darkest_patch(other.image[ys, xs], side))
        if theirs - own < config.precipitate_persist:
            return False
    return True


def find_precipitates(work: Work, neighbours: list[Work], config: DamageConfig, exclude: np.ndarray | None = None,
                      found: tuple[np.ndarray, list[Blob]] | None = None) -> LostRegions | None:
    """The precipitates of a section as a region (cells of ``work.factor`` px, grown by one cell to take in
    their rims), or None when they cover less than ``precipitate_min_fraction``.

    ``neighbours``: working copies of the usable neighbouring sections (not missing), same shape as ``work``.
    ``found``: ``candidates(work, config, exclude)`` when already made.
    """
    usable = [n for n in neighbours if n.image.shape == work.image.shape]
    if len(usable) < 2:  # one neighbour is too little evidence that a dark blob does not persist
        return None
    labels, blobs = found if found is not None else candidates(work, config, exclude)
    if not blobs:
        return None
    shifts = [neighbour_shift(work, n) for n in usable]
    keep = [b.label for b in blobs if is_transient(work, b, usable, config, shifts)]
    if not keep:
        return None
    table = np.zeros(int(labels.max()) + 1, bool)
    table[keep] = True
    mask = cv2.dilate(table[labels].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    region = LostRegions(mask, work.factor, work.shape, {})
    return region if region.fraction >= config.precipitate_min_fraction else None
