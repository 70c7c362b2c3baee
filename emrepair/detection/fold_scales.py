"""The images fold detection works on: darkness against the local tissue, at the scales of its passes.

A fold is judged against the tissue beside it, not against the section's global median: the tissue level
is a smooth map, estimated from the pixels that are not much darker than their surroundings (two rounds of
normalised convolution on a coarse grid), so a darker region, uneven illumination or a box of changed
contrast does not look like a fold and a faint band on dim tissue still does. Each detection pass looks at
this ratio (1 = the local tissue, 0 = black) at its own scale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np


@dataclass(frozen=True)
class FoldPass:
    """One detection pass.

    Attributes:
        name: what the pass is for (``thin``, ``dark`` or ``faint``).
        factor: downsampling factor of the image the Hough transform and first trace see.
        pool: ``area`` (averaging) or ``min`` (keeps lines narrower than the factor dark).
        dark: Hough input pixels are darker than this ratio to the local tissue.
        edge: a profile is inside the band where it is darker than this.
        min_extent: dark components shorter than this fraction of the shorter side are not Hough input.
        widths: (narrowest, widest) band accepted, in full-resolution pixels.
        min_coverage: share of its stretch along which a band found by this pass must be dark (0: the
            detector's ``fold_min_coverage_broken``).
        consistent: count a position only where the band is half to twice its median width.
        hough: (votes, shortest segment) of the Hough transform, as fractions of the shorter side.
        smooth: neighbouring profiles (of 256 along the chord) averaged before a band is looked for.
        screen_contrast: how much darker than both its sides a band must be at a position for the trace (the
            quick look, the working-scale and the full-resolution trace) to count it.
    """

    name: str
    factor: int
    pool: str
    dark: float
    edge: float
    min_extent: float
    widths: tuple[float, float]
    min_coverage: float = 0.0
    consistent: bool = False
    hough: tuple[float, float] = (0.15, 0.25)
    smooth: int = 1
    screen_contrast: float = 0.25


def fold_passes(shape: tuple[int, int], min_width: float, max_width: float) -> list[FoldPass]:
    """The passes for a section of ``shape``: near-black lines and bands (down to 2 px wide) on a copy
    min-pooled 2x (full resolution on sections up to 300 px), and faint bands on a coarse averaged copy (about
    128 px on the shorter side) and, for sections over 511 px, again on one about 256 px."""
    side = min(shape)
    dark_factor = 2 if side > 300 else 1
    faint_factor = max(2, min(8, side // 128))
    passes = [
        FoldPass("dark", dark_factor, "min", 0.3, 0.5, 0.2, (1.2, max_width * 1.2)),
        # faint bands look most like chains of membranes and long dark organelles: they must be unbroken
        FoldPass("faint", faint_factor, "area", 0.72, 0.8, 0.2, (max(4.0, 0.8 * min_width), max_width * 1.2),
                 min_coverage=0.75, consistent=True, hough=(0.4, 0.5), smooth=7),
    ]
    # on a large section the coarse copy leaves a narrow faint band 1-2 px wide and barely darker: look again at
    # twice that resolution (about 256 px on the shorter side), for bands up to 24 of its pixels wide
    finer = max(2, min(8, side // 256))
    if finer < faint_factor:
        widest = min(max_width * 1.2, 24.0 * finer)
        passes.append(replace(passes[1], factor=finer, widths=(passes[1].widths[0], widest)))
    return passes


# far brighter than the tissue median and flat (range over 3 x 3 pixels of the coarse copy, in units of the
# median): a white hole or a saturated area, not tissue
_BRIGHT = 1.6
_FLAT = 0.01


class TissueLevel:
    """A section's intensities over the local tissue level, at any scale.

    The level is a smooth map estimated on a coarse copy from the pixels that are not much darker than
    their surroundings (two rounds of normalised convolution), so darker regions, uneven illumination and
    boxes of changed contrast are divided out while a band, even a faint one, stays darker than 1.
    """

    def __init__(self, values: np.ndarray, black: float, median: float):
        h, w = values.shape
        self.shape = (h, w)
        self._values = values
        self._black = np.float32(black)
        self._gain = np.float32(1.0 / max(float(median - black), 1e-12))
        self._unit: np.ndarray | None = None
        sigma_px = max(40.0, 0.08 * min(h, w))
        step = max(1, int(sigma_px // 8))  # the level is estimated on a copy with 8 pixels per sigma
        # averaging and pooling commute with the affine map to units: shrink first, map the small copy
        small = self.unit if step == 1 else self._to_unit(
            cv2.resize(values, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_AREA))
        sigma = sigma_px / step
        kernel = np.ones((3, 3), np.uint8)
        lost = (small > _BRIGHT) & (cv2.dilate(small, kernel) - cv2.erode(small, kernel) < _FLAT)
        level = _blur(small, ((small > 0.3) & ~lost).astype(np.float32), sigma)
        level = _blur(small, ((small > 0.8 * level) & ~lost).astype(np.float32), sigma)
        # where no tissue is close (a section almost all band), fall back to the section's median
        self.level = np.where(level > 0.05, level, 1.0).astype(np.float32)
        self._full: np.ndarray | None = None

    def _to_unit(self, image: np.ndarray) -> np.ndarray:
        return (image - self._black) * self._gain

    @property
    def unit(self) -> np.ndarray:
        """(H, W) float32 intensities over the section's tissue median, above black (computed when first
        asked for: the passes need only shrunken copies)."""
        if self._unit is None:
            self._unit = self._to_unit(self._values).astype(np.float32, copy=False)
        return self._unit

    def _divide(self, image: np.ndarray) -> np.ndarray:
        level = cv2.resize(self.level, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        return (image / level).astype(np.float32)

    def full(self) -> np.ndarray:
        """(H, W) float32 ratio at full resolution (computed once, when first asked for)."""
        if self._full is None:
            self._full = self._divide(self.unit)
        return self._full

    def at(self, spec: FoldPass) -> np.ndarray:
        """The ratio image a pass works on: area-averaged or min-pooled by its factor."""
        f = spec.factor
        if f == 1:
            return self.full()
        h, w = self.shape
        if spec.pool == "min":
            crop = self._values[: h // f * f, : w // f * f]
            pooled = crop[0::f, 0::f].copy()
            for dy in range(f):
                for dx in range(f):
                    if dy or dx:
                        np.minimum(pooled, crop[dy::f, dx::f], out=pooled)
            return self._divide(self._to_unit(pooled))
        return self._divide(self._to_unit(cv2.resize(self._values, (w // f, h // f), interpolation=cv2.INTER_AREA)))


def _blur(values: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised Gaussian convolution of ``values`` with ``weights``."""
    num = cv2.GaussianBlur(values * weights, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(weights, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return num / np.maximum(den, 1e-3)
