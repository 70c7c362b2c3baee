"""Lost regions of a section: the parts that hold no tissue (flat, saturated, noise-filled, torn away, stripes).

A section is cut into square cells of ``config.flat_block_px`` pixels. A cell is lost when it is

* flat: its standard deviation is below ``flat_tolerance`` of the section's 1-99 % range (black, white,
  constant or saturated fill, and what lies beyond a torn edge), or mostly non-finite, or its neighbourhood lies
  near the section's black end (``lost_stripe_level``) or in the top 2 % of an integer range, with little
  contrast (``lost_smooth_std`` of the section's standard deviation): an empty film or a saturated detector with
  a little noise; a cell near the black end with little contrast of its own is lost too (an empty film's edge
  cells, whose neighbourhood reaches into the tissue);
* noise: its neighbourhood (3 x 3 cells) has no spatial correlation (lag-1 autocorrelation below
  ``lost_noise_autocorr``) although its contrast is tissue-like (standard deviation at least
  ``lost_noise_std`` of the section's): EM texture is correlated from pixel to pixel, shot noise in a light
  lumen is weak, and a detector dropout filled with noise is neither;
* stripe: a full row or column (``lost_stripe_cover`` of its pixels) near the section's black or white end, or
  flat (below the flat tolerance in ``lost_stripe_cover`` of its segments of four cells: constant fill at any
  level), or noise along its whole length (in ``lost_stripe_cover`` of its segments of four cells, or over the whole line
  and in 60 % of its segments, for lines of at least eight segments), as a beam or detector dropout leaves; stripes are kept as rows and columns at
  full resolution, not as cells.

Lost cells are closed (holes of one cell filled), components smaller than ``lost_min_region`` of the section
are dropped, and the rest is grown by one cell so that the cells a region's edge crosses belong to it (the
reported fraction counts those halfway). Cells lying mostly on stripe lines of a constant or near-black fill with
sharp edges (no line beyond looks like the fill) are left to the lines, which are exact; a torn part's full lines
keep their cells, which grow across its edge.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from emrepair.detection.config import DetectConfig
from emrepair.detection.lost_lines import _sharp_lines, _stripe_lines
from emrepair.detection.lost_sums import _cell_sums, _correlation, _exact_f32, _products
from emrepair.detection.section_stats import median as middle

LOST_KINDS = ("flat", "noise", "stripe")


@dataclass
class LostRegions:
    """The lost cells of one section.

    Attributes:
        cells: bool (gh, gw) mask, True where the cell is lost; cell ``(i, j)`` covers rows
            ``i*cell .. (i+1)*cell`` and columns ``j*cell .. (j+1)*cell`` (the last row/column of cells also
            covers the section's remainder).
        cell: cell side in full-resolution pixels.
        shape: the section's (height, width).
        fractions: lost fraction of the section by cause (``LOST_KINDS``), before clean-up; overlapping.
        core: the cells found lost before the region was grown by one cell (None: the same as ``cells``).
        rows, cols: bool masks (height,) and (width,) of whole lost rows and columns (dropout stripes), found at
            full resolution; None when there are none.
    """

    cells: np.ndarray
    cell: int
    shape: tuple[int, int]
    fractions: dict[str, float]
    core: np.ndarray | None = None
    rows: np.ndarray | None = None
    cols: np.ndarray | None = None

    def any(self) -> bool:
        """Whether anything is lost."""
        return bool(self.cells.any() or (self.rows is not None and self.rows.any())
                    or (self.cols is not None and self.cols.any()))

    @property
    def fraction(self) -> float:
        """Estimated fraction of the section's area that is lost: halfway between the cells found lost and
        the region grown by one cell (the cells an edge crosses are partly lost); stripes count exactly."""
        if not self.any():
            return 0.0
        grown = float(self.mask().mean())
        if self.core is None:
            return grown
        core = LostRegions(self.core, self.cell, self.shape, {}, None, self.rows, self.cols)
        return 0.5 * (float(core.mask().mean()) + grown)

    def mask(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Bool mask of the lost pixels at ``shape`` (default the section's own)."""
        full = self.window(slice(0, self.shape[0]), slice(0, self.shape[1]))
        if shape is not None and tuple(shape) != tuple(self.shape):
            full = cv2.resize(full.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        return full

    def window(self, ys: slice, xs: slice) -> np.ndarray:
        """Bool mask of the lost pixels in rows ``ys`` and columns ``xs`` of the section (full resolution)."""
        gh, gw = self.cells.shape
        rows = np.minimum(np.arange(ys.start, ys.stop) // self.cell, gh - 1)
        cols = np.minimum(np.arange(xs.start, xs.stop) // self.cell, gw - 1)
        out = self.cells[rows[:, None], cols[None, :]]
        if self.rows is not None:
            out |= self.rows[ys][:, None]
        if self.cols is not None:
            out |= self.cols[xs][None, :]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form: cell, grid and the cells (and stripe rows / columns) packed, compressed, base64-encoded."""
        out = {"cell": int(self.cell), "grid": [int(s) for s in self.cells.shape],
               "shape": [int(s) for s in self.shape], "cells": _pack(self.cells)}
        for name in ("rows", "cols"):
            lines = getattr(self, name)
            if lines is not None and lines.any():
                out[name] = _pack(lines)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LostRegions:
        """Inverse of ``to_dict``; raises ValueError or KeyError on a malformed document."""
        grid = tuple(int(s) for s in data["grid"])
        shape = tuple(int(s) for s in data["shape"])
        if len(grid) != 2 or len(shape) != 2 or min(grid) < 1:
            raise ValueError(f"bad region grid {list(grid)}")
        cells = _unpack(data["cells"], grid[0] * grid[1]).reshape(grid)
        lines = [_unpack(data[name], n) if name in data else None for name, n in (("rows", shape[0]), ("cols", shape[1]))]
        return cls(cells, int(data["cell"]), shape, {}, None, *lines)


def _pack(bits: np.ndarray) -> str:
    """Bool array -> packed bits, zlib, base64 text."""
    return base64.b64encode(zlib.compress(np.packbits(bits.astype(bool), axis=None).tobytes(), 9)).decode("ascii")


def _unpack(text: str, size: int) -> np.ndarray:
    """Inverse of ``_pack`` for ``size`` bits; ValueError when corrupt or short."""
    try:
        raw = np.frombuffer(zlib.decompress(base64.b64decode(text)), np.uint8)
    except zlib.error as exc:
        raise ValueError(f"region cells are corrupt: {exc}") from exc
    bits = np.unpackbits(raw)[:size]
    if bits.size != size:
        raise ValueError("region cells are truncated")
    return bits.astype(bool)


@dataclass
class LostMeasure:
    """What ``measure_lost`` found before anything is excluded: lost cells by cause and stripe lines."""

    shape: tuple[int, int]
    cell: int
    flat: np.ndarray | None  # None: the section is too small for cells
    noise: np.ndarray | None = None
    rows: np.ndarray | None = None
    cols: np.ndarray | None = None
    sharp: tuple[np.ndarray, np.ndarray] | None = None  # the stripe rows and columns with sharp edges


def measure_lost(values: np.ndarray, nonfinite: np.ndarray | None, config: DetectConfig,
                 saturation: float | None = None, integer: bool = False,
                 levels: tuple[float, float, float] | None = None) -> LostMeasure:
    """The measuring stage of ``find_lost_regions``: flat and noise cells and stripe lines of a cleaned float32
    section, nothing excluded yet (``lost_from`` finishes, once per exclusion).

    ``integer``: the pixels are integers (the section's dtype is), which lets small ones be summed in float32
    exactly. ``levels``: the 1, 50 and 99 % percentiles of ``values[::4, ::4]`` when already known
    (``SectionStats.levels``).
    """
    h, w = values.shape
    cell = max(2, int(config.flat_block_px))
    if h < 2 * cell or w < 2 * cell:
        return LostMeasure((h, w), max(h, w, 1), None)
    vmin, vmax, _, _ = cv2.minMaxLoc(values)
    extremes = (float(vmin), float(vmax))
    exact = _exact_f32(values, integer, extremes)
    squares = values * values if exact else None  # float32, shared with the stripe search
    products = _products(values, cell, squares) if exact else None  # ... and so are the neighbour products
    sums = _cell_sums(values, cell, exact, squares, products)
    grid = sums["x"].shape
    n_cell = float(cell * cell)
    mean = sums["x"] / n_cell
    std = np.sqrt(np.clip(sums["xx"] / n_cell - mean * mean, 0.0, None))
    sample = values[::4, ::4]
    lo, median, hi = levels if levels is not None else (float(v) for v in np.percentile(sample, [1, 50, 99]))
    scale = max(hi - lo, 1e-6 * max(1.0, abs(median)))
    tolerance = max(config.flat_tolerance * scale, 1e-3 * abs(median))
    flat = std < tolerance
    if nonfinite is not None:
        bad = nonfinite[: grid[0] * cell, : grid[1] * cell].reshape(grid[0], cell, grid[1], cell).mean(axis=(1, 3))
        flat |= bad > 0.5
    kernel = np.ones((3, 3), np.float64)
    windowed = {k: cv2.filter2D(v, -1, kernel, borderType=cv2.BORDER_REPLICATE) for k, v in sums.items()}
    n_win = 9.0 * n_cell
    autocorr = 0.5 * (_correlation(windowed, n_win, "r") + _correlation(windowed, n_win, "d"))
    wmean = windowed["x"] / n_win
    wstd = np.sqrt(np.clip(windowed["xx"] / n_win - wmean * wmean, 0.0, None))
    global_std = float(sample.std())
    noise = (autocorr < config.lost_noise_autocorr) & (wstd >= config.lost_noise_std * global_std) & ~flat
    smooth = wstd < config.lost_smooth_std * global_std
    tissue_median = middle(wmean[~smooth]) if (~smooth).any() else median
    rows, cols, noisy_rows, noisy_cols = _stripe_lines(values, cell, config, tissue_median, global_std, extremes,
                                                       np.float32 if exact else np.float64, squares, products,
                                                       tolerance)
    sharp = (_sharp_lines(values, rows, noisy_rows, 1, tolerance), _sharp_lines(values, cols, noisy_cols, 0, tolerance))
    # nearly black and nearly flat (an empty film with a little noise), or saturated with a little noise (light
    # lumens are smooth too, but not at the top of the integer range)
    extreme = wmean <= extremes[0] + config.lost_stripe_level * (tissue_median - extremes[0])
    if saturation is not None:
        extreme |= wmean >= saturation
    flat |= extreme & smooth
    # a cell of its own near the black end with little contrast (an empty film's edge cells, whose windows
    # reach into the tissue)
    flat |= (mean <= extremes[0] + config.lost_stripe_level * (tissue_median - extremes[0])) \
        & (std < config.lost_smooth_std * global_std)
    return LostMeasure((h, w), cell, flat, noise, rows, cols, sharp)


def lost_from(measure: LostMeasure, config: DetectConfig, exclude: np.ndarray | None = None) -> LostRegions:
    """The excluding stage of ``find_lost_regions``: ``exclude`` (a bool pixel mask at any resolution, e.g. a
    fold band) is never lost; small components are dropped and the region grown (see the module docstring)."""
    h, w = measure.shape
    if measure.flat is None:
        return LostRegions(np.zeros((1, 1), bool), measure.cell, (h, w), {k: 0.0 for k in LOST_KINDS})
    flat, noise, rows, cols = measure.flat, measure.noise, measure.rows, measure.cols
    grid = flat.shape
    if exclude is not None and exclude.any():
        excluded = cv2.resize(exclude.astype(np.uint8), (grid[1], grid[0]), interpolation=cv2.INTER_AREA) > 0
        excluded = cv2.dilate(excluded.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        flat = flat & ~excluded
        noise = noise & ~excluded
        band = cv2.resize(exclude.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        rows = rows & (band.mean(axis=1) < 0.5)
        cols = cols & (band.mean(axis=0) < 0.5)
    stripe_area = 1.0 - (1.0 - rows.mean()) * (1.0 - cols.mean())
    if stripe_area < config.lost_min_region:
        rows, cols, stripe_area = np.zeros_like(rows), np.zeros_like(cols), 0.0
    fractions = {"flat": float(flat.mean()), "noise": float(noise.mean()), "stripe": float(stripe_area)}
    # cells that lie mostly on sharp-edged stripe lines are the lines' (kept exactly, at full resolution), not
    # cells to grow
    on_lines = np.zeros(grid, bool)
    if measure.sharp is not None and (rows.any() or cols.any()):
        on_lines = _on_lines(rows & measure.sharp[0], cols & measure.sharp[1], grid, measure.cell)
    core = _clean_cells((flat | noise) & ~on_lines, config)
    grown = cv2.dilate(core.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0 if core.any() else core
    return LostRegions(grown, measure.cell, (h, w), fractions, core, rows if rows.any() else None,
                       cols if cols.any() else None)


def find_lost_regions(values: np.ndarray, nonfinite: np.ndarray | None, config: DetectConfig,
                      exclude: np.ndarray | None = None, saturation: float | None = None,
                      integer: bool = False) -> LostRegions:
    """The lost regions of a cleaned float32 section (see ``section_stats.clean_section``).

    ``exclude`` is a bool pixel mask (any resolution) of areas known to be something else (a fold band): never
    lost. ``saturation``: for integer data, the level above which a smooth area is a saturated detector (see
    ``saturation_level``). ``integer``: see ``measure_lost``. To try several exclusions, measure once
    (``measure_lost``) and call ``lost_from`` for each.
    """
    return lost_from(measure_lost(values, nonfinite, config, saturation, integer), config, exclude)


def saturation_level(dtype: np.dtype) -> float | None:
    """The top 2 % of an integer dtype's range (None for floats, whose range says nothing)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "ui":
        return None
    info = np.iinfo(dtype)
    return float(info.max) - 0.02 * (float(info.max) - float(info.min))


def _on_lines(rows: np.ndarray, cols: np.ndarray, grid: tuple[int, int], cell: int,
              share: float = 0.5) -> np.ndarray:
    """Bool (gh, gw): the cells at least ``share`` of whose pixels lie on the lost ``rows`` or ``cols``."""
    def per_cell(lines: np.ndarray, n: int) -> np.ndarray:
        index = np.minimum(np.arange(lines.size) // cell, n - 1)
        return np.bincount(index, lines.astype(np.float64), n) / np.maximum(np.bincount(index, minlength=n), 1)

    across, down = per_cell(rows, grid[0]), per_cell(cols, grid[1])
    return 1.0 - (1.0 - across)[:, None] * (1.0 - down)[None, :] >= share


def _clean_cells(lost: np.ndarray, config: DetectConfig) -> np.ndarray:
    """Close one-cell holes and drop components below ``lost_min_region`` of the section."""
    if not lost.any():
        return lost
    square = np.ones((3, 3), np.uint8)
    closed = cv2.morphologyEx(lost.astype(np.uint8), cv2.MORPH_CLOSE, square, borderType=cv2.BORDER_REPLICATE)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= config.lost_min_region * lost.size
    return keep[labels]
