"""Detection over a whole volume: one pass in z order, holding three sections (z - 1, z, z + 1) as read and
cleaned, for the fold z cue, and a window of their small copies."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from emrepair.callbacks import ProgressCallback
from emrepair.detection.config import DetectConfig
from emrepair.detection.contrast_regions import find_contrast_region
from emrepair.detection.damage_config import DamageConfig
from emrepair.detection.fold_detect import FoldFinding, find_folds, fold_band_mask
from emrepair.detection.lost_or_fold import is_lost_not_fold
from emrepair.detection.lost_regions import LostRegions, lost_from, measure_lost, saturation_level
from emrepair.detection.precipitates import Work, find_precipitates, work_copy
from emrepair.detection.precipitates import candidates as precipitate_candidates
from emrepair.detection.report import Defect, DetectionReport
from emrepair.detection.section_stats import SectionStats, clean_section, half_size, missing_score, section_stats
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
    work: Work | None = None  # working copy for the damage detectors (only when they run)
    known: np.ndarray | None = None  # fold band and lost region at the working copy's size: not damage


def _cleaned(section: np.ndarray, z: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(section, its cleaned float32 values, its non-finite mask), after checking its shape and dtype."""
    if section.ndim != 2:
        raise InputError(f"section {z} has shape {section.shape}; expected 2-D (y, x)")
    if section.dtype.kind not in "uif":
        raise InputError(f"unsupported dtype {section.dtype}; expected integer or float pixels")
    values, nonfinite = clean_section(section)
    return section, values, nonfinite


def _analyse(read: tuple[np.ndarray, np.ndarray, np.ndarray], z: int, config: DetectConfig,
             damage: DamageConfig | None = None,
             neighbours: tuple[np.ndarray | None, np.ndarray | None] | None = None) -> _Pending:
    """Everything one section (``read``, as ``_cleaned`` gives it) says about itself: statistics, missing score,
    folds (with the z cue from the cleaned ``neighbours`` before and after, None where absent), small copy."""
    section, values, nonfinite = read
    half = half_size(values)
    stats = section_stats(values, nonfinite, config, half)
    # measured once; a fold band found below is excluded without measuring again
    measured = measure_lost(values, nonfinite, config, saturation=saturation_level(section.dtype),
                            integer=section.dtype.kind in "ui", levels=stats.levels)
    regions = lost_from(measured, config)
    score = missing_score(stats, config, regions=regions.fraction)
    folds: list[FoldFinding] = []
    small = None
    if score <= config.missing_threshold:
        folds = find_folds(values, stats.black, stats.median, config, half, neighbours=neighbours)
        small = small_normalised(half, config.analysis_side)
    elif stats.lost_fraction < 0.95 and stats.autocorr > config.noise_autocorr:
        # a wide, pure-black fold band is flat too: what a fold explains is not lost
        folds = find_folds(values, stats.black, stats.median, config, half, neighbours=neighbours)
        if folds:
            explained = float(_band_mask(folds, values.shape).mean())
            score = missing_score(stats, config, explained)
            if score <= config.missing_threshold:
                small = small_normalised(half, config.analysis_side)
            else:
                folds = []
    if folds and regions.any():
        # a dark band along a torn edge, on a dropout stripe or inside a larger lost area is no fold
        folds = [f for f in folds if not is_lost_not_fold(_band_mask([f], values.shape), regions, values)]
        score = missing_score(stats, config, regions=regions.fraction)
    band = _band_mask(folds, values.shape) if folds else None
    if band is not None and regions.any():  # what a fold band explains is not lost
        regions = lost_from(measured, config, exclude=band)
    partial = score <= config.missing_threshold and regions.fraction >= config.min_lost_fraction
    if partial:
        small = None  # a partly lost section says little about its neighbours' similarity
    item = _Pending(z, stats, score, small, folds, regions if partial else None, band)
    if damage is not None and score <= config.missing_threshold:
        item.work = work_copy(values, stats.black, stats.median, damage.work_side)
        size = item.work.image.shape
        known = regions.mask(size) if regions.any() else np.zeros(size, bool)
        if band is not None:
            known |= cv2.resize(band.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_AREA) > 0
        item.known = known
    return item


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


def _damage(item: _Pending, neighbours: list[_Pending], config: DetectConfig, damage: DamageConfig,
            report: DetectionReport) -> dict[str, float]:
    """Report the section's staining precipitates and contrast region, judged against its usable neighbours
    (not missing); their area fractions."""
    works = [n.work for n in neighbours if n.work is not None and n.self_missing <= config.missing_threshold]
    fractions = {"precipitate": 0.0, "contrast": 0.0}
    if item.work is None or not works:
        return fractions
    known = item.known
    # contrast is compared without any dark blob (a precipitate lowers its block's mean), and precipitates are
    # looked for outside the contrast region (a dimmed membrane turns near-black there)
    blobs = precipitate_candidates(item.work, damage, known)
    contrast = find_contrast_region(item.work, works, damage, known | (blobs[0] > 0))
    if contrast is not None:
        region, change = contrast
        fractions["contrast"] = region.fraction
        score = float(np.clip(0.5 + 0.5 * (change - 1.0), 0.5, 1.0))
        report.marks.append(Defect(item.z, "contrast", score, fraction=round(region.fraction, 4), region=region))
        known = known | region.mask(known.shape)
        blobs = None  # to be found again outside the contrast region
    found = find_precipitates(item.work, works, damage, known, blobs)
    if found is not None:
        fractions["precipitate"] = found.fraction
        score = float(np.clip(0.5 + 0.5 * found.fraction / 0.002, 0.5, 1.0))
        report.marks.append(Defect(item.z, "precipitate", score, fraction=round(found.fraction, 4), region=found))
    return fractions


def _finalise(item: _Pending, typical: float | None, config: DetectConfig, report: DetectionReport,
              shape: tuple[int, int], damage: DamageConfig | None = None,
              neighbours: list[_Pending] = ()) -> None:
    """Decide the section's defect (missing takes precedence over fold) and record its statistics; with
    ``damage``, also its precipitates and contrast region (against ``neighbours``)."""
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
    extra = {}
    if damage is not None:
        found = _damage(item, list(neighbours), config, damage, report) if missing <= config.missing_threshold \
            else {"precipitate": 0.0, "contrast": 0.0}
        extra = {f"{kind}_fraction": round(value, 4) for kind, value in found.items()}
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
        **extra,
    })


def detect_volume(vol: Any, config: DetectConfig = DetectConfig(), progress: ProgressCallback | None = None,
                  damage: DamageConfig | None = None) -> DetectionReport:
    """Find missing and folded sections of ``vol`` (an emrepair.io Volume), reading each section once.

    Missing: flat (blank, constant, saturated), non-finite or lost in regions over more than ``lost_fraction``
    of the section, pure noise, or (in stacks whose neighbours are reliably alike) unlike both neighbours. A volume
    of one constant value therefore has every section missing. Folds: see ``find_folds``. Fewer than
    ``neighbour_min_pairs + 1`` good sections disable the neighbour cue; everything else works from one
    section up. Partial: lost regions (``lost_regions.find_lost_regions``) over at least ``min_lost_fraction`` of a section
    that is not missing, reported beside its fold if it has one.

    With ``damage`` (a DamageConfig), staining precipitates (``detection.precipitates``) and regional contrast
    changes (``detection.contrast_regions``) are reported too, as kinds ``precipitate`` and ``contrast`` in
    ``report.marks``; they are judged against the neighbours, so a section is decided once both are read.
    Without it (the default here) neither is looked for; ``emrepair detect`` and fix's own detection pass it.
    """
    shape = tuple(int(s) for s in vol.shape)
    if len(shape) != 3:
        raise InputError(f"expected a 3-D (z, y, x) volume, got shape {shape}")
    depth = shape[0]
    report = DetectionReport(input=str(getattr(vol.info, "path", "") or ""), shape=shape)
    window: deque[_Pending] = deque()
    good_sims: list[float] = []
    done: list[_Pending | None] = [None]  # the section decided last: the previous neighbour of the next one

    def finalise() -> None:
        item = window.popleft()
        neighbours = [n for n in (done[0], window[0] if window else None) if n is not None]
        _finalise(item, typical(), config, report, shape[1:], damage, neighbours)
        if done[0] is not None:
            done[0].work = done[0].known = None  # no longer needed: keep at most three working copies
        done[0] = item

    def typical() -> float | None:
        return float(np.median(good_sims)) if len(good_sims) >= config.neighbour_min_pairs else None

    # never-written sections (from the reader's chunk index) all hold the fill value: one analysis serves them all
    fill = set(getattr(vol, "unwritten_sections", list)())
    fill_item: _Pending | None = None
    # sections z - 1, z and z + 1 as read and cleaned: a section is analysed once its next one is read (the z cue)
    read: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def load(z: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if z not in read:
            read[z] = _cleaned(vol.read_section(z), z)
        return read[z]

    def cleaned_neighbour(z: int) -> np.ndarray | None:
        if not 0 <= z < depth or (z in fill and z not in read):
            return None  # absent, or a never-written section (one fill value: no cue)
        return load(z)[1]

    for z in range(depth):
        if z in fill and fill_item is not None:
            item = replace(fill_item, z=z, sim_prev=None, sim_next=None)
        else:
            neighbours = (cleaned_neighbour(z - 1), cleaned_neighbour(z + 1))
            item = _analyse(load(z), z, config, damage, neighbours)
            fill_item = item if z in fill else fill_item
        read.pop(z - 1, None)
        if window:
            prev = window[-1]
            if prev.small is not None and item.small is not None:
                sim = shift_tolerant_ncc(prev.small, item.small)
                prev.sim_next, item.sim_prev = sim, sim
                good_sims.append(sim)
        window.append(item)
        while len(window) > 1:  # a section is decided once its next neighbour is known
            finalise()
        if progress is not None:
            progress(z + 1, depth)
    while window:
        finalise()
    return report
