"""Detection over a whole volume: one pass in z order, a window of three small sections in memory."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from emrepair.callbacks import ProgressCallback
from emrepair.detection.config import DetectConfig
from emrepair.detection.fold_detect import FoldFinding, find_folds, fold_band_mask
from emrepair.detection.lost_or_fold import is_lost_not_fold
from emrepair.detection.lost_regions import (
    LostRegions,
    find_lost_regions,
    saturation_level,
)
from emrepair.detection.report import Defect, DetectionReport
from emrepair.detection.section_stats import (
    SectionStats,
    clean_section,
    half_size,
    missing_score,
    section_stats,
)
from emrepair.detection.similarity import shift_tolerant_ncc, small_normalised
from emrepair.errors import InputError

_MASK_MAX_SIDE = 2048  # fold band masks are kept at most this large (per section, folds only)


@dataclass
class _Pending:
    """A section analysed from its own pixels, waiting for its next neighbour."""

    z: int
    stats: SectionStats
    self_missing: float
    small: np.ndarray | None
    folds: list[FoldFinding]
    regions: LostRegions | None = None
    band: np.ndarray | None = None  # union of the folds' band masks (_band_mask), made once
    sim_prev: float | None = None
    sim_next: float | None = None


def _analyse(section: np.ndarray, z: int, config: DetectConfig) -> _Pending:
    """Everything one section says about itself: statistics, missing score, folds, small copy."""
    if section.ndim != 2:
        raise InputError(f"section {z} has shape {section.shape}; expected 2-D (y, x)")
    if section.dtype.kind not in "uif":
        raise InputError(f"unsupported dtype {section.dtype}; expected integer or float pixels")
    values, nonfinite = clean_section(section)
    half = half_size(values)
    stats = section_stats(values, nonfinite, config, half)
    saturation = saturation_level(section.dtype)
    regions = find_lost_regions(values, nonfinite, config, saturation=saturation)
    score = missing_score(stats, config, regions=regions.fraction)
    folds: list[FoldFinding] = []
    small = None
    if score <= config.missing_threshold:
        folds = find_folds(values, stats.black, stats.median, config, half)
        small = small_normalised(half, config.analysis_side)
    elif stats.lost_fraction < 0.95 and stats.autocorr > config.noise_autocorr:
        # a wide, pure-black fold band is flat too: what a fold explains is not lost
        folds = find_folds(values, stats.black, stats.median, config, half)
        if folds:
            explained = float(_band_mask(folds, values.shape).mean())
            score = missing_score(stats, config, explained)
            if score <= config.missing_threshold:
                small = small_normalised(half, config.analysis_side)
            else:
                folds = []
    if folds and regions.any():
        # a dark band along a torn edge, on a dropout stripe or inside a larger lost area is no fold
        folds = [f for f in folds if not is_lost_not_fold(_band_mask([f], values.shape), regions)]
        score = missing_score(stats, config, regions=regions.fraction)
    band = _band_mask(folds, values.shape) if folds else None
    if band is not None and regions.any():  # what a fold band explains is not lost
        regions = find_lost_regions(values, nonfinite, config, exclude=band, saturation=saturation)
    partial = score <= config.missing_threshold and regions.fraction >= config.min_lost_fraction
    if partial:
        small = None  # a partly lost section says little about its neighbours' similarity
    return _Pending(z, stats, score, small, folds, regions if partial else None, band)


def _neighbour_score(item: _Pending, typical: float | None, config: DetectConfig) -> float:
    """Missing score from similarity to the neighbours, in stacks whose neighbours are reliably alike."""
    # only judged between two good neighbours: a neighbour that is itself missing says nothing
    if typical is None or typical < config.neighbour_min_typical or item.sim_prev is None or item.sim_next is None:
        return 0.0
    relative = max(item.sim_prev, item.sim_next) / typical
    return float(np.clip(0.5 + (config.neighbour_drop - relative) / (2 * config.neighbour_drop), 0.0, 1.0))


def _band_mask(folds: list[FoldFinding], shape: tuple[int, int]) -> np.ndarray:
    """Union of the fold bands (segmented from the pixels), at most _MASK_MAX_SIDE on the long side."""
    return fold_band_mask(folds, shape, _MASK_MAX_SIDE)


def _finalise(item: _Pending, typical: float | None, config: DetectConfig, report: DetectionReport,
              shape: tuple[int, int]) -> None:
    """Decide the section's defect (missing takes precedence over fold) and record its statistics."""
    # a fold or a lost region explains why a section differs from its neighbours
    neighbour = 0.0 if item.folds or item.regions is not None else _neighbour_score(item, typical, config)
    missing = max(item.self_missing, neighbour)
    fold_score = max((f.score for f in item.folds), default=0.0)
    if missing > config.missing_threshold:
        report.defects.append(Defect(item.z, "missing", missing))
    elif item.folds:
        lines = [line for f in item.folds for line in f.curve.segments(f.width_px)]
        width = float(np.median([f.width_px for f in item.folds]))
        report.defects.append(Defect(item.z, "fold", fold_score, lines, round(width, 1)))
        report.band_masks[item.z] = item.band if item.band is not None else _band_mask(item.folds, shape)
    partial = 0.0
    if missing <= config.missing_threshold and item.regions is not None:
        partial = item.regions.fraction
        score = float(np.clip(0.5 + (partial - config.min_lost_fraction) / 0.2, 0.5, 1.0))
        report.defects.append(Defect(item.z, "partial", score, fraction=round(partial, 4), region=item.regions))
    stats = item.stats
    report.sections.append({
        "z": item.z,
        "median": round(stats.median, 4),
        "lost_fraction": round(stats.lost_fraction, 4),
        "nonfinite_fraction": round(stats.nonfinite_fraction, 4),
        "autocorr": round(stats.autocorr, 4),
        "sim_prev": None if item.sim_prev is None else round(item.sim_prev, 4),
        "sim_next": None if item.sim_next is None else round(item.sim_next, 4),
        "missing_score": round(missing, 4),
        "fold_score": round(fold_score, 4),
        "partial_fraction": round(partial, 4),
    })


def detect_volume(vol: Any, config: DetectConfig = DetectConfig(), progress: ProgressCallback | None = None) -> DetectionReport:
    """Find missing and folded sections of ``vol`` (an emrepair.io Volume), reading each section once.

    Missing: flat (blank, constant, saturated), non-finite or lost in regions over more than ``lost_fraction``
    of the section, pure noise, or (in stacks whose neighbours are reliably alike) unlike both neighbours. A volume
    of one constant value therefore has every section missing. Folds: see ``find_folds``. Fewer than
    ``neighbour_min_pairs + 1`` good sections disable the neighbour cue; everything else works from one
    section up. Partial: lost regions (``find_lost_regions``) over at least ``min_lost_fraction`` of a section
    that is not missing, reported beside its fold if it has one.
    """
    shape = tuple(int(s) for s in vol.shape)
    if len(shape) != 3:
        raise InputError(f"expected a 3-D (z, y, x) volume, got shape {shape}")
    depth = shape[0]
    report = DetectionReport(input=str(getattr(vol.info, "path", "") or ""), shape=shape)
    window: deque[_Pending] = deque()
    good_sims: list[float] = []

    def typical() -> float | None:
        return float(np.median(good_sims)) if len(good_sims) >= config.neighbour_min_pairs else None

    # never-written sections (from the reader's chunk index) all hold the fill value: one analysis serves them all
    fill = set(getattr(vol, "unwritten_sections", list)())
    fill_item: _Pending | None = None
    for z in range(depth):
        if z in fill and fill_item is not None:
            item = replace(fill_item, z=z, sim_prev=None, sim_next=None)
        else:
            item = _analyse(vol.read_section(z), z, config)
            fill_item = item if z in fill else fill_item
        if window:
            prev = window[-1]
            if prev.small is not None and item.small is not None:
                sim = shift_tolerant_ncc(prev.small, item.small)
                prev.sim_next, item.sim_prev = sim, sim
                good_sims.append(sim)
        window.append(item)
        while len(window) > 1:  # a section is decided once its next neighbour is known
            _finalise(window.popleft(), typical(), config, report, shape[1:])
        if progress is not None:
            progress(z + 1, depth)
    while window:
        _finalise(window.popleft(), typical(), config, report, shape[1:])
    return report
