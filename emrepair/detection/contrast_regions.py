"""Regional contrast changes: a patch of a section (often a rectangle) whose brightness or contrast changed.

A gain or offset applied to part of a section (uneven staining, a charging patch, the contrast boxes beside real
folds) shows as a step in the ratio of the section's local mean, or local spread, to its neighbours'. Both are
measured in blocks of ``contrast_block_px`` work px, as log ratios with the whole section's median ratio taken
out (a section that is merely brighter overall is not regional). With two usable neighbours a block counts only
where both agree in sign, by the smaller of the two changes; the map is smoothed lightly. A region is a component of
blocks where the change reaches 0.8 of ``contrast_min_change`` (mean) or ``contrast_min_spread`` (spread), whose
median change reaches the threshold itself, covering at least ``contrast_min_fraction`` of the
section and ``contrast_min_fill`` of its bounding box. Only sections with two usable neighbours are judged (with
one, which of the two changed cannot be told: the first and last sections never are). Fold bands and lost regions (and a margin around them) are
never compared.
"""

from __future__ import annotations

import cv2
import numpy as np

from emrepair.detection.damage_config import DamageConfig
from emrepair.detection.lost_regions import LostRegions
from emrepair.detection.precipitates import Work
from emrepair.detection.section_stats import median

_SPREAD_SIGMA = 2.0
_MAP_SIGMA = 0.7  # smoothing of the change maps, in blocks
_SEED = 0.8  # a region grows over blocks with this fraction of the threshold; its median must reach it


def block_stats(image: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of ``image`` over blocks of ``block`` px (whole blocks only); the spread is
    taken after a blur of ``_SPREAD_SIGMA`` px, so that a defocused (blurred) patch keeps its spread while a
    gain still changes it."""
    h, w = image.shape
    gh, gw = max(1, h // block), max(1, w // block)
    crop = image[: gh * block, : gw * block].astype(np.float32, copy=False)
    mean = cv2.resize(crop, (gw, gh), interpolation=cv2.INTER_AREA)
    smooth = cv2.GaussianBlur(crop, (0, 0), _SPREAD_SIGMA, borderType=cv2.BORDER_REFLECT)
    smooth_mean = cv2.resize(smooth, (gw, gh), interpolation=cv2.INTER_AREA)
    square = cv2.resize(smooth * smooth, (gw, gh), interpolation=cv2.INTER_AREA)
    return mean, np.sqrt(np.clip(square - smooth_mean * smooth_mean, 0.0, None))


def _cached_stats(work: Work, block: int) -> tuple[np.ndarray, np.ndarray]:
    """``block_stats`` of a working copy, made once per copy (a section is compared as itself and as the
    neighbour of the two next to it)."""
    key = ("block_stats", block)
    if key not in work.cache:
        work.cache[key] = block_stats(work.image, block)
    return work.cache[key]


def block_side(shape: tuple[int, int], config: DamageConfig) -> int:
    """Block side for a working copy: ``contrast_block_px``, smaller for small sections (at least 16 blocks
    across the shorter side, at least 8 px)."""
    return int(np.clip(min(shape) // 16, 8, config.contrast_block_px))


def _log_ratio(a: np.ndarray, b: np.ndarray, floor: float, trusted: np.ndarray) -> np.ndarray:
    """log(a / b) minus its median over ``trusted`` blocks; 0 where either is below ``floor``."""
    ok = (a > floor) & (b > floor)
    ratio = np.where(ok, np.log(np.maximum(a, floor)) - np.log(np.maximum(b, floor)), 0.0)
    usable = ok & trusted
    if usable.sum() < 4:
        return np.zeros_like(ratio)
    return np.where(ok, ratio - median(ratio[usable]), 0.0)


def _agree(changes: list[np.ndarray]) -> np.ndarray:
    """Per block, the change every neighbour agrees on: the smallest in magnitude when all share a sign, else 0."""
    if len(changes) == 1:
        return changes[0]
    a, b = changes[0], changes[1]
    return np.where(np.sign(a) == np.sign(b), np.sign(a) * np.minimum(np.abs(a), np.abs(b)), 0.0)


def change_maps(work: Work, neighbours: list[Work], config: DamageConfig,
                exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed log-ratio maps of local mean and spread against the neighbours (blocks), and the trusted blocks."""
    block = block_side(work.image.shape, config)
    mean, spread = _cached_stats(work, block)
    trusted = np.ones(mean.shape, bool)
    if exclude is not None and exclude.any():
        near = cv2.resize(exclude.astype(np.uint8), (mean.shape[1], mean.shape[0]), interpolation=cv2.INTER_AREA) > 0
        trusted &= ~(cv2.dilate(near.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    scale = max(abs(work.median - work.black), 1e-6)
    mean_changes, spread_changes = [], []
    for other in neighbours:
        other_mean, other_spread = _cached_stats(other, block)
        floor = 0.02 * scale
        mean_changes.append(_log_ratio(mean - work.black + floor, other_mean - other.black + floor, floor, trusted))
        spread_changes.append(_log_ratio(spread, other_spread, 0.02 * scale, trusted))
    maps = []
    for changes in (mean_changes, spread_changes):
        agreed = np.where(trusted, _agree(changes), 0.0).astype(np.float32)
        maps.append(cv2.GaussianBlur(agreed, (0, 0), _MAP_SIGMA, borderType=cv2.BORDER_REFLECT))
    return maps[0], maps[1], trusted


def find_contrast_region(work: Work, neighbours: list[Work], config: DamageConfig,
                         exclude: np.ndarray | None = None) -> tuple[LostRegions, float] | None:
    """The region whose contrast changed (cells of ``contrast_block_px * work.factor`` px) and its mean log
    change relative to its threshold (1: just at it), or None. ``neighbours``: working copies of the usable
    neighbouring sections, same shape as ``work``."""
    usable = [n for n in neighbours if n.image.shape == work.image.shape]
    if len(usable) < 2:  # with one neighbour, which of the two changed cannot be told
        return None
    maps = change_maps(work, usable, config, exclude)[:2]
    grid = maps[0].shape
    found = np.zeros(grid, bool)
    strength = []
    for change, threshold in zip(maps, (config.contrast_min_change, config.contrast_min_spread)):
        for sign in (1.0, -1.0):
            above = (sign * change >= _SEED * threshold).astype(np.uint8)
            count, labels, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
            for i in range(1, count):
                _, _, bw, bh, area = (int(v) for v in stats[i])
                if area < config.contrast_min_fraction * above.size or area < config.contrast_min_fill * bw * bh:
                    continue
                part = labels == i
                if median(sign * change[part]) < threshold:
                    continue
                found |= part
                strength.append(float(np.abs(change[part]).mean()) / threshold)
    if not found.any():
        return None
    cell = block_side(work.image.shape, config) * work.factor
    return LostRegions(found, cell, work.shape, {}), max(strength)
