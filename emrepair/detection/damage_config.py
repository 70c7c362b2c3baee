"""Thresholds of the staining-precipitate and regional-contrast detectors (docs/damage.md).

Defaults were set on the untouched stacks of ../shared/data (zero flags on all of them) and on simulated damage
(emrepair.simulate.damage) in sections with z % 5 != 2; the benchmark measures them on z % 5 == 2.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DamageConfig:
    """Settings of the precipitate and contrast-region detectors, which judge a section against its neighbours.

    Both work on a copy of the section of at most ``work_side`` px on the long side (area-averaged).

    Staining precipitates (kind ``precipitate``):
        precipitate_dark: a precipitate's pixels are darker than this fraction of the section's median (measured
            above black, as for folds): near-black.
        precipitate_min_px: smallest precipitate, in full-resolution pixels of area.
        precipitate_max_px: largest extent (bounding-box side) of one precipitate, full-resolution px.
        precipitate_open_px: radius (full-resolution px) of the opening that a precipitate survives and a thin
            membrane does not.
        precipitate_thickness: a precipitate is compact: its widest inscribed disc has at least this fraction of
            the radius of a disc of its area (a disc 1; thick membranes and crescents about 0.3).
        precipitate_persist: the same place in each usable neighbour (within ``precipitate_shift_px``) is at least
            this much lighter (fraction of the neighbour's median) than the precipitate: it is not persistent
            structure (mitochondria, membranes, folds persist in z and are greyer).
        precipitate_shift_px: misalignment tolerated between neighbours (full-resolution px).
        precipitate_min_fraction: a section is reported when its precipitates cover at least this fraction.

    Regional contrast changes (kind ``contrast``):
        contrast_block_px: block side (work px) of the local mean and spread compared with the neighbours.
        contrast_min_change: a region is changed when its local mean differs from both neighbours' by at least
            this log ratio (after the whole section's ratio is taken out); 0.2 is 22 %.
        contrast_min_spread: ... or its local spread (standard deviation) by at least this log ratio (0.4 is
            49 %): neighbouring ssTEM sections differ more in spread than in mean.
        contrast_min_fraction: smallest reported region, as a fraction of the section.
        contrast_min_fill: the region fills at least this fraction of its bounding box (a rectangle or compact
            patch, not a meandering illumination gradient).
    """

    work_side: int = 1024
    precipitate_dark: float = 0.2
    precipitate_min_px: int = 400
    precipitate_max_px: int = 160
    precipitate_open_px: int = 2
    precipitate_thickness: float = 0.45
    precipitate_persist: float = 0.3
    precipitate_shift_px: int = 32
    precipitate_min_fraction: float = 0.0002

    contrast_block_px: int = 32
    contrast_min_change: float = 0.2
    contrast_min_spread: float = 0.4
    contrast_min_fraction: float = 0.03
    contrast_min_fill: float = 0.6

    def __post_init__(self) -> None:
        for name in ("precipitate_dark", "precipitate_thickness", "precipitate_persist", "precipitate_min_fraction", "contrast_min_fraction",
                     "contrast_min_fill"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.work_side < 64 or self.contrast_block_px < 2 or min(self.contrast_min_change, self.contrast_min_spread) <= 0:
            raise ValueError(f"work_side >= 64, contrast_block_px >= 2 and contrast_min_change > 0 required: {self}")
