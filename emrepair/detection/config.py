"""Thresholds and scales of the defect detector, with defaults tuned on the stacks in ../shared/data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectConfig:
    """Detector settings. Pixel sizes are full-resolution pixels; ratios are relative to the section.

    Missing sections:
        analysis_side: long side (px) of the small copy used for neighbour similarity.
        flat_block_px: side of the blocks whose standard deviation decides "flat" (lost) pixels.
        flat_tolerance: a block is flat when its std is below this fraction of the section's 1-99 %
            intensity range.
        lost_fraction: a section is missing when more than this fraction is flat or non-finite (or lost in
            regions, see below); less than that is kept and only its lost regions are repaired.
        noise_autocorr: a section whose lag-1 autocorrelation is below this is pure noise (EM ≈ 0.8-0.95).
        neighbour_drop: in a stack whose neighbours are alike (typical similarity at least
            ``neighbour_min_typical``), a section whose best similarity to its neighbours falls below this
            fraction of the typical one is missing (e.g. foreign tissue).
        neighbour_min_typical: see ``neighbour_drop``; ssTEM stacks (typical ≈ 0.5-0.65) do not use this cue.
        neighbour_min_pairs: pairs of good neighbours seen before the typical similarity is trusted.
        missing_threshold: a section is reported missing when its missing score is above this.

    Partly lost sections (emrepair.detection.lost_regions), in cells of ``flat_block_px``:
        min_lost_fraction: a section is reported ``partial`` when at least this fraction of it is lost
            (and at most ``lost_fraction``).
        lost_noise_autocorr: a cell is noise-filled when its 3 x 3-cell neighbourhood's lag-1
            autocorrelation is below this (EM texture ≈ 0.4-0.95 in the stacks measured, i.i.d. noise ≈ 0) ...
        lost_noise_std: ... and its standard deviation is at least this fraction of the section's (the shot
            noise of light lumens is weaker).
        lost_stripe_level: stripe pixels lie within this fraction of the way from the section's black (or
            white) end to its median.
        lost_stripe_cover: a row or column is a dropout stripe when at least this fraction of it does.
        lost_smooth_std: an area near the black or white end (``lost_stripe_level``) is lost when its
            standard deviation is below this fraction of the section's.
        lost_min_region: lost components smaller than this fraction of the section are ignored.

    Folds:
        fold_min_width_px: narrowest fold to find; sets the working scale (about 2.5 working px).
        fold_max_width_px: widest fold to find.
        fold_dark_ratio: candidate band pixels are darker than this fraction of the section's median
            (measured above black: 0, or the minimum for data with negative values).
        fold_edge_ratio: where a band's edge is drawn, as a fraction of the median.
        fold_min_length: a fold spans at least this fraction of the section's shorter side.
        fold_min_coverage: fraction of the band's length that must be dark and of consistent width.
        fold_threshold: a section is reported folded when its fold score is at least this.
        fold_min_span: the traced stretch (broken pieces joined) spans at least this fraction of the band's
            chord across the section: folds cross the section, membranes end inside it.
        fold_min_coverage_broken: a fold broken into pieces is dark along at least this fraction of its
            stretch (the score still falls with coverage below ``fold_min_coverage``).
        fold_min_contrast: the band is at least this much darker than the tissue on both sides of it
            (1 - band / side level).
    """

    analysis_side: int = 64
    flat_block_px: int = 8
    flat_tolerance: float = 0.01
    lost_fraction: float = 0.9
    noise_autocorr: float = 0.4
    neighbour_drop: float = 0.3
    neighbour_min_typical: float = 0.75
    neighbour_min_pairs: int = 4
    missing_threshold: float = 0.5
    min_lost_fraction: float = 0.03
    lost_noise_autocorr: float = 0.25
    lost_noise_std: float = 0.75
    lost_stripe_level: float = 0.2
    lost_stripe_cover: float = 0.85
    lost_smooth_std: float = 0.15
    lost_min_region: float = 0.005

    fold_min_width_px: float = 5.0
    fold_max_width_px: float = 80.0
    fold_dark_ratio: float = 0.35
    fold_edge_ratio: float = 0.5
    fold_min_length: float = 0.4
    fold_min_coverage: float = 0.8
    fold_threshold: float = 0.6
    fold_min_span: float = 0.85
    fold_min_coverage_broken: float = 0.6
    fold_min_contrast: float = 0.25
