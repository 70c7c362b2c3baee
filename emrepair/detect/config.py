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
        lost_fraction: a section is missing when more than this fraction is flat or non-finite.
        noise_autocorr: a section whose lag-1 autocorrelation is below this is pure noise (EM ≈ 0.8-0.95).
        neighbour_drop: in a stack whose neighbours are alike (typical similarity at least
            ``neighbour_min_typical``), a section whose best similarity to its neighbours falls below this
            fraction of the typical one is missing (e.g. foreign tissue).
        neighbour_min_typical: see ``neighbour_drop``; ssTEM stacks (typical ≈ 0.5-0.65) do not use this cue.
        neighbour_min_pairs: pairs of good neighbours seen before the typical similarity is trusted.
        missing_threshold: a section is reported missing when its missing score is above this.

    Folds:
        fold_min_width_px: narrowest fold to find; sets the working scale (about 2.5 working px).
        fold_max_width_px: widest fold to find.
        fold_dark_ratio: candidate band pixels are darker than this fraction of the section's median
            (measured above black: 0, or the minimum for data with negative values).
        fold_edge_ratio: where a band's edge is drawn, as a fraction of the median.
        fold_min_length: a fold spans at least this fraction of the section's shorter side.
        fold_min_coverage: fraction of the band's length that must be dark and of consistent width.
        fold_threshold: a section is reported folded when its fold score is at least this.
    """

    analysis_side: int = 64
    flat_block_px: int = 8
    flat_tolerance: float = 0.01
    lost_fraction: float = 0.5
    noise_autocorr: float = 0.4
    neighbour_drop: float = 0.3
    neighbour_min_typical: float = 0.75
    neighbour_min_pairs: int = 4
    missing_threshold: float = 0.5

    fold_min_width_px: float = 5.0
    fold_max_width_px: float = 80.0
    fold_dark_ratio: float = 0.35
    fold_edge_ratio: float = 0.5
    fold_min_length: float = 0.4
    fold_min_coverage: float = 0.8
    fold_threshold: float = 0.6
