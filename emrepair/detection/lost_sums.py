"""Sums behind the lost-region search (emrepair.detection.lost_regions): per-cell moments of a section and
its neighbour products, computed without copying or transposing the section (the row and column tests are in
emrepair.detection.lost_lines)."""

from __future__ import annotations

import cv2
import numpy as np

_STRIP_CELLS = 64  # cells per strip of rows while summing, so memory stays near a strip of the section
_SHARED_MAX_PX = 1 << 24  # neighbour products are shared between the two searches up to this section size


def _exact_f32(values: np.ndarray, integer: bool, extremes: tuple[float, float]) -> bool:
    """Whether float32 sums of the pixels, their squares and products over a cell are exact (so they equal the
    float64 ones bit for bit): integer pixels no larger than 2**12 in magnitude."""
    return integer and max(abs(extremes[0]), abs(extremes[1])) <= 4096.0


def _cell_sums(values: np.ndarray, cell: int, exact_f32: bool = False, squares: np.ndarray | None = None,
               products: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per-cell sums of the pixels, their squares and their products with the right and lower neighbours.

    The section's last column (of whole cells) is its own right neighbour, and its last row its own lower one
    when the cells reach the bottom. ``exact_f32``: the pixels are small integers (``_exact_f32``), summed
    exactly in float32 by whole rows and columns; else float64 by area resampling (exact for whole cells).
    ``squares``: ``values * values`` in float32 when already made, ``products``: ``_products`` (both used on
    the exact path only).
    """
    if exact_f32:
        return _cell_sums_exact(values, cell, squares, products)
    h = values.shape[0]
    gh, gw, width, sums, step = _cell_grid(values.shape, cell)
    for top in range(0, gh * cell, step):
        bottom = min(top + step, gh * cell)
        # the strip with its lower neighbour row and its own last column repeated on the right
        a = np.empty((bottom - top + 1, width + 1), np.float64)
        a[:-1, :width] = values[top:bottom, :width]
        a[-1, :width] = values[bottom if bottom < h else bottom - 1, :width]
        a[:, width] = a[:, width - 1]
        sq = a * a
        x, r, d = a[:-1, :width], a[:-1, 1:], a[1:, :width]
        parts = {"x": x, "xx": sq[:-1, :width], "r": r, "rr": sq[:-1, 1:], "xr": x * r,
                 "d": d, "dd": sq[1:, :width], "xd": x * d}
        i0, n = top // cell, (bottom - top) // cell
        for name, arr in parts.items():
            sums[name][i0:i0 + n] = cv2.resize(arr, (gw, n), interpolation=cv2.INTER_AREA) * (cell * cell)
    return sums


def _times_right(x: np.ndarray, out: np.ndarray) -> None:
    """``out[:, :-1] = x[:, :-1] * x[:, 1:]`` (each pixel times its right neighbour; ``out[:, -1]`` is left for
    the caller to set). For C-contiguous arrays as one flat product, four times faster than row by row: the
    same products, plus one across each row's end that the caller overwrites."""
    if x.flags.c_contiguous and out.flags.c_contiguous and x.shape == out.shape and x.size > 1:
        flat = x.reshape(-1)
        np.multiply(flat[:-1], flat[1:], out=out.reshape(-1)[:-1])
    else:
        np.multiply(x[:, :-1], x[:, 1:], out=out[:, :-1])


def _products(values: np.ndarray, cell: int, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Each pixel times its right and its lower neighbour (float32, the section's shape; the last column and
    row hold the pixels' squares, as the cell sums take them), made once for the cell sums and the stripe
    search when both cover the whole section: its sides are whole segments of four cells and it is at most
    ``_SHARED_MAX_PX`` pixels (two more section-sized arrays). None otherwise."""
    h, w = values.shape
    seg = 4 * cell
    if h % seg or w % seg or values.size > _SHARED_MAX_PX or values.dtype != np.float32 \
            or squares.dtype != np.float32:
        return None
    right, lower = np.empty_like(values), np.empty_like(values)
    _times_right(values, right)
    right[:, -1] = squares[:, -1]
    np.multiply(values[:-1], values[1:], out=lower[:-1])
    lower[-1] = squares[-1]
    return right, lower


def _block(arr: np.ndarray, cell: int) -> np.ndarray:
    """Sums of a (n * cell, gw * cell) float32 array over its cells, float64 (exact for small integers)."""
    n, width = arr.shape[0] // cell, arr.shape[1]
    cols = arr.reshape(n, cell, width).sum(axis=1)
    return cols.reshape(n, width // cell, cell).sum(axis=2).astype(np.float64)


def _cell_grid(shape: tuple[int, ...], cell: int) -> tuple[int, int, int, dict[str, np.ndarray], int]:
    """(rows of cells, columns of cells, pixel width they cover, zeroed float64 sums per name, strip height)."""
    gh, gw = max(1, shape[0] // cell), max(1, shape[1] // cell)
    names = ("x", "xx", "r", "rr", "xr", "d", "dd", "xd")
    return gh, gw, gw * cell, {name: np.zeros((gh, gw), np.float64) for name in names}, _STRIP_CELLS * cell


def _cell_sums_exact(values: np.ndarray, cell: int, squares: np.ndarray | None = None,
                     products: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """``_cell_sums`` for small integer pixels: the neighbour-shifted sums follow from each cell's sums by
    swapping its first column (row) for the one beyond it, so only the two products need their own pass.
    ``squares``: ``values * values`` (float32) when already made; ``products``: ``_products``."""
    h = values.shape[0]
    gh, gw, width, sums, step = _cell_grid(values.shape, cell)
    first = np.arange(gw) * cell
    beyond = np.minimum(first + cell, width - 1)  # the last column is its own right neighbour
    for top in range(0, gh * cell, step):
        bottom = min(top + step, gh * cell)
        i0, n = top // cell, (bottom - top) // cell
        x = values[top:bottom, :width]
        below_row = values[bottom if bottom < h else bottom - 1, :width]
        sq = x * x if squares is None else squares[top:bottom, :width]
        if products is not None:
            xr, xd = products[0][top:bottom], products[1][top:bottom]
        else:
            xr = np.empty_like(x)
            _times_right(x, xr)
            xr[:, -1] = sq[:, -1]
            xd = np.empty_like(x)
            np.multiply(x[:-1], x[1:], out=xd[:-1])
            xd[-1] = x[-1] * below_row
        for (own, right, lower), arr, row_after in ((("x", "r", "d"), x, below_row),
                                                    (("xx", "rr", "dd"), sq, below_row * below_row)):
            cols = arr.reshape(n, cell, width).sum(axis=1).astype(np.float64)  # per cell row, per column
            total = cols.reshape(n, gw, cell).sum(axis=2)
            sums[own][i0:i0 + n] = total
            sums[right][i0:i0 + n] = total - cols[:, first] + cols[:, beyond]
            lines = arr[::cell].reshape(n, gw, cell).sum(axis=2).astype(np.float64)  # each cell's first row
            after = np.concatenate([lines[1:], row_after.reshape(1, gw, cell).sum(axis=2).astype(np.float64)])
            sums[lower][i0:i0 + n] = total - lines + after
        sums["xr"][i0:i0 + n] = _block(xr, cell)
        sums["xd"][i0:i0 + n] = _block(xd, cell)
    return sums


def _correlation(sums: dict[str, np.ndarray], n: float, other: str) -> np.ndarray:
    """Correlation of the pixels with their ``other`` ("r" right, "d" lower) neighbours from windowed sums."""
    mx, my = sums["x"] / n, sums[other] / n
    vx = sums["xx"] / n - mx * mx
    vy = sums[other * 2] / n - my * my
    cov = sums["x" + other] / n - mx * my
    denom = np.sqrt(np.clip(vx * vy, 0.0, None))
    return np.where(denom > 1e-9, cov / np.maximum(denom, 1e-12), 1.0)
