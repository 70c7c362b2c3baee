"""Lost regions of a section: the parts that hold no tissue (flat, saturated, noise-filled, torn away, stripes).

A section is cut into square cells of ``config.flat_block_px`` pixels. A cell is lost when it is

* flat: its standard deviation is below ``flat_tolerance`` of the section's 1-99 % range (black, white,
  constant or saturated fill, and what lies beyond a torn edge), or mostly non-finite, or its neighbourhood lies
  near the section's black or white end (``lost_stripe_level``) with little contrast (``lost_smooth_std`` of
  the section's standard deviation): an empty film or a saturated detector with a little noise;
* noise: its neighbourhood (3 x 3 cells) has no spatial correlation (lag-1 autocorrelation below
  ``lost_noise_autocorr``) although its contrast is tissue-like (standard deviation at least
  ``lost_noise_std`` of the section's): EM texture is correlated from pixel to pixel, shot noise in a light
  lumen is weak, and a detector dropout filled with noise is neither;
* stripe: it lies on a full row or column (``lost_stripe_cover`` of its pixels) near the section's black or
  white end, as a beam or detector dropout leaves.

Lost cells are closed (holes of one cell filled), components smaller than ``lost_min_region`` of the section
are dropped, and the rest is grown by one cell so that the cells a region's edge crosses belong to it (the
reported fraction counts those halfway).
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from emrepair.detect.config import DetectConfig

_STRIP_CELLS = 64  # cells per strip of rows while summing, so memory stays near a strip of the section
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
    """

    cells: np.ndarray
    cell: int
    shape: tuple[int, int]
    fractions: dict[str, float]
    core: np.ndarray | None = None

    @property
    def fraction(self) -> float:
        """Estimated fraction of the section's area that is lost: halfway between the cells found lost and
        the region grown by one cell (the cells an edge crosses are partly lost)."""
        if not self.cells.any():
            return 0.0
        grown = float(self.mask().mean())
        if self.core is None:
            return grown
        core = float(cells_to_mask(self.core, self.cell, self.shape).mean())
        return 0.5 * (core + grown)

    def mask(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Bool mask of the lost pixels at ``shape`` (default the section's own)."""
        return cells_to_mask(self.cells, self.cell, self.shape, shape)

    def window(self, ys: slice, xs: slice) -> np.ndarray:
        """Bool mask of the lost pixels in rows ``ys`` and columns ``xs`` of the section (full resolution)."""
        gh, gw = self.cells.shape
        rows = np.minimum(np.arange(ys.start, ys.stop) // self.cell, gh - 1)
        cols = np.minimum(np.arange(xs.start, xs.stop) // self.cell, gw - 1)
        return self.cells[rows[:, None], cols[None, :]]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: cell, grid and the cells packed, zlib-compressed and base64-encoded."""
        packed = np.packbits(self.cells.astype(bool), axis=None)
        return {"cell": int(self.cell), "grid": [int(s) for s in self.cells.shape],
                "shape": [int(s) for s in self.shape],
                "cells": base64.b64encode(zlib.compress(packed.tobytes(), 9)).decode("ascii")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LostRegions":
        """Inverse of ``to_dict``; raises ValueError or KeyError on a malformed document."""
        grid = tuple(int(s) for s in data["grid"])
        shape = tuple(int(s) for s in data["shape"])
        if len(grid) != 2 or len(shape) != 2 or min(grid) < 1:
            raise ValueError(f"bad region grid {list(grid)}")
        try:
            raw = np.frombuffer(zlib.decompress(base64.b64decode(data["cells"])), np.uint8)
        except zlib.error as exc:
            raise ValueError(f"region cells are corrupt: {exc}") from exc
        bits = np.unpackbits(raw)[: grid[0] * grid[1]]
        if bits.size != grid[0] * grid[1]:
            raise ValueError("region cells are truncated")
        return cls(bits.reshape(grid).astype(bool), int(data["cell"]), shape, {})


def cells_to_mask(cells: np.ndarray, cell: int, section_shape: tuple[int, int],
                  shape: tuple[int, int] | None = None) -> np.ndarray:
    """Bool pixel mask of ``cells`` (side ``cell`` px in a section of ``section_shape``), resized to ``shape``."""
    h, w = section_shape
    gh, gw = cells.shape
    rows = np.minimum(np.arange(h) // cell, gh - 1)
    cols = np.minimum(np.arange(w) // cell, gw - 1)
    full = cells[rows[:, None], cols[None, :]]
    if shape is not None and tuple(shape) != (h, w):
        full = cv2.resize(full.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    return full


def _cell_sums(values: np.ndarray, cell: int) -> dict[str, np.ndarray]:
    """Per-cell sums of the pixels, their squares and their products with the right and lower neighbours."""
    h, w = values.shape
    gh, gw = max(1, h // cell), max(1, w // cell)
    names = ("x", "xx", "r", "rr", "xr", "d", "dd", "xd")
    sums = {name: np.zeros((gh, gw), np.float64) for name in names}
    step = _STRIP_CELLS * cell
    for top in range(0, gh * cell, step):
        bottom = min(top + step, gh * cell)
        x = values[top:bottom, : gw * cell].astype(np.float64)
        below = values[top + 1: bottom + 1, : gw * cell].astype(np.float64)
        if below.shape[0] < x.shape[0]:  # the section's last row is its own lower neighbour
            below = np.concatenate([below, x[-1:]], axis=0)
        r = np.concatenate([x[:, 1:], x[:, -1:]], axis=1)
        parts = {"x": x, "xx": x * x, "r": r, "rr": r * r, "xr": x * r, "d": below, "dd": below * below,
                 "xd": x * below}
        i0, n = top // cell, (bottom - top) // cell
        for name, arr in parts.items():
            sums[name][i0:i0 + n] = arr.reshape(n, cell, gw, cell).sum(axis=(1, 3))
    return sums


def _correlation(sums: dict[str, np.ndarray], n: float, other: str) -> np.ndarray:
    """Correlation of the pixels with their ``other`` ("r" right, "d" lower) neighbours from windowed sums."""
    mx, my = sums["x"] / n, sums[other] / n
    vx = sums["xx"] / n - mx * mx
    vy = sums[other * 2] / n - my * my
    cov = sums["x" + other] / n - mx * my
    denom = np.sqrt(np.clip(vx * vy, 0.0, None))
    return np.where(denom > 1e-9, cov / np.maximum(denom, 1e-12), 1.0)


def _noisy_lines(values: np.ndarray, axis: int, cell: int, config: DetectConfig, global_std: float) -> np.ndarray:
    """Rows (axis 1) or columns (axis 0) that are noise along ``lost_stripe_cover`` of their length: lag-1
    autocorrelation below ``lost_noise_autocorr`` and tissue-like contrast in segments of four cells."""
    lines = values if axis == 1 else values.T
    seg = 4 * cell
    count = lines.shape[1] // seg
    if count < 1:
        return np.zeros(lines.shape[0], bool)
    parts = lines[:, : count * seg].reshape(lines.shape[0], count, seg).astype(np.float64)
    centred = parts - parts.mean(axis=2, keepdims=True)
    a, b = centred[:, :, :-1], centred[:, :, 1:]
    denom = np.sqrt((a * a).sum(axis=2) * (b * b).sum(axis=2))
    autocorr = np.where(denom > 1e-9, (a * b).sum(axis=2) / np.maximum(denom, 1e-12), 1.0)
    noisy = (autocorr < config.lost_noise_autocorr) & (parts.std(axis=2) >= config.lost_noise_std * global_std)
    return noisy.mean(axis=1) >= config.lost_stripe_cover


def _stripe_cells(values: np.ndarray, cell: int, grid: tuple[int, int], config: DetectConfig) -> np.ndarray:
    """Cells on rows or columns that lie, nearly all along, at the section's black or white end, or that
    are noise along their whole length (a dropout filled with detector noise)."""
    sample = values[::2, ::2]
    lo, median, hi = (float(v) for v in np.percentile(sample, [0.0, 50.0, 100.0]))
    dark = lo + config.lost_stripe_level * (median - lo)
    bright = hi - config.lost_stripe_level * (hi - median)
    out = np.zeros(grid, bool)
    if not hi > lo:
        return out
    gh, gw = grid
    global_std = float(sample.std())
    found = [(_noisy_lines(values, 1, cell, config, global_std), _noisy_lines(values, 0, cell, config, global_std))]
    for extreme in (values <= dark, values >= bright):
        found.append((extreme.mean(axis=1) >= config.lost_stripe_cover,
                      extreme.mean(axis=0) >= config.lost_stripe_cover))
    for rows, cols in found:
        for line, axis_len, axis in ((rows, gh, 0), (cols, gw, 1)):
            if not line.any():
                continue
            per_cell = line[: axis_len * cell].reshape(axis_len, cell).mean(axis=1) >= 0.5
            if axis == 0:
                out |= per_cell[:, None]
            else:
                out |= per_cell[None, :]
    return out


def find_lost_regions(values: np.ndarray, nonfinite: np.ndarray | None, config: DetectConfig,
                      exclude: np.ndarray | None = None) -> LostRegions:
    """The lost regions of a cleaned float32 section (see ``section_stats.clean_section``).

    ``exclude`` is a bool pixel mask (any resolution) of areas known to be something else (a fold band): never
    lost.
    """
    h, w = values.shape
    cell = max(2, int(config.flat_block_px))
    if h < 2 * cell or w < 2 * cell:
        return LostRegions(np.zeros((1, 1), bool), max(h, w, 1), (h, w), {k: 0.0 for k in LOST_KINDS})
    sums = _cell_sums(values, cell)
    grid = sums["x"].shape
    n_cell = float(cell * cell)
    mean = sums["x"] / n_cell
    std = np.sqrt(np.clip(sums["xx"] / n_cell - mean * mean, 0.0, None))
    sample = values[::4, ::4]
    lo, median, hi = (float(v) for v in np.percentile(sample, [1, 50, 99]))
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
    stripe = _stripe_cells(values, cell, grid, config)
    # nearly black or white and nearly flat (a dark film or a saturated detector with a little noise)
    p0, p100 = (float(v) for v in np.percentile(values[::2, ::2], [0.0, 100.0]))
    extreme = ((wmean <= p0 + config.lost_stripe_level * (median - p0))
               | (wmean >= p100 - config.lost_stripe_level * (p100 - median)))
    flat |= extreme & (wstd < config.lost_smooth_std * global_std)
    lost = flat | noise | stripe
    fractions = {"flat": float(flat.mean()), "noise": float(noise.mean()), "stripe": float(stripe.mean())}
    if exclude is not None and exclude.any():
        excluded = cv2.resize(exclude.astype(np.uint8), (grid[1], grid[0]), interpolation=cv2.INTER_AREA) > 0
        excluded = cv2.dilate(excluded.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        lost &= ~excluded
    core = _clean_cells(lost, config)
    grown = cv2.dilate(core.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0 if core.any() else core
    return LostRegions(grown, cell, (h, w), fractions, core)


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


def is_torn_edge(band: np.ndarray, regions: LostRegions) -> bool:
    """Whether a dark band (a fold candidate; bool mask at any resolution) is rather the lost part beyond a torn
    edge: mostly lost cells, with tissue on one side only (a fold has the section on both sides of its band)."""
    grid = regions.cells.shape
    cells = cv2.resize(band.astype(np.float32), (grid[1], grid[0]), interpolation=cv2.INTER_AREA) > 0.5
    area = int(cells.sum())
    lost = regions.core if regions.core is not None else regions.cells
    if area == 0 or (cells & lost).sum() < 0.25 * area:
        return False
    # width and length of the band in cells, from its area and its distance transform
    inside = cv2.distanceTransform(np.pad(cells, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    width = max(1.0, 2.0 * float(inside.max()))
    length = area / width
    # the tissue just outside the band: on both sides along its length for a fold
    ring = (cv2.dilate(cells.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & ~cells & ~regions.cells
    return float(ring.sum()) / (4.0 * length) < 0.75
