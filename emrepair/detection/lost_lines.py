"""Dropout stripes for the lost-region search (emrepair.detection.lost_regions): the noise, flat and extreme
tests of a section's rows and columns from segment sums, computed without copying or transposing it."""

from __future__ import annotations

import cv2
import numpy as np

from emrepair.detection.config import DetectConfig
from emrepair.detection.lost_sums import _times_right

_LINE_MIN_SHARE = 0.6  # a line noise-like over its whole length is a stripe when this share of segments is noise too
_LINE_MIN_SEGMENTS = 8  # ... and it is at least this many segments long
_WEAK_SHARE = 0.5  # a line next to a noise stripe joins it when half of its segments are noise
_EDGE_SHARE = 0.2  # a stripe's edge is sharp when less than this share of the next line looks like its fill


def _segment_sums(arr: np.ndarray, axis: int, seg: int, count: int) -> np.ndarray:
    """Sums of ``arr`` over ``count`` consecutive segments of ``seg`` pixels along ``axis`` (float64, shape
    (lines, count))."""
    if axis == 1:  # area resampling along rows; summing whole rows along columns (far faster there)
        return cv2.resize(arr, (count, arr.shape[0]), interpolation=cv2.INTER_AREA).astype(np.float64) * seg
    return arr.reshape(count, seg, arr.shape[1]).sum(axis=1).T.astype(np.float64)


def _noisy_lines(values: np.ndarray, squares: np.ndarray, axis: int, cell: int, config: DetectConfig,
                 global_std: float, dtype: type, lag: np.ndarray | None = None) -> np.ndarray:
    """Rows (axis 1) or columns (axis 0) that are noise along ``lost_stripe_cover`` of their length: lag-1
    autocorrelation below ``lost_noise_autocorr`` and tissue-like contrast in segments of four cells.

    Each segment's autocorrelation (centred on the segment's mean) comes from its sums of pixels, squares and
    lag-1 products, so the section is never copied or transposed; ``squares`` is ``values ** 2``.
    """
    return _line_tests(values, squares, axis, cell, config, global_std, dtype, lag)[0]


def _line_tests(values: np.ndarray, squares: np.ndarray, axis: int, cell: int, config: DetectConfig,
                global_std: float, dtype: type, lag: np.ndarray | None = None,
                tolerance: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_noisy_lines``; the lines that are flat along ``lost_stripe_cover`` of their length (a standard
    deviation below ``tolerance`` in segments of four cells: a constant dropout line at any level; none when
    ``tolerance`` is None); and the weak lines, noise in ``_WEAK_SHARE`` of their segments (not flat or dark
    ones: the lines a slanted near-black fold covers half of are flat or dark in half their segments)."""
    seg = 4 * cell
    count = values.shape[axis] // seg
    lines = values.shape[1 - axis]
    if count < 1:
        return np.zeros(lines, bool), np.zeros(lines, bool), np.zeros(lines, bool)
    span = count * seg
    x = (values[:, :span] if axis == 1 else values[:span]).astype(dtype, copy=False)
    made = lag is None or lag.shape != x.shape
    if made:  # x_k * x_(k+1) within the span; the last one (k = span - 1) stays 0
        lag = np.zeros(x.shape, dtype)
    if axis == 1:
        if made:
            _times_right(x, lag)
            lag[:, -1] = 0.0
        first, last = x[:, ::seg], x[:, seg - 1::seg]
        cross = lag[:, seg - 1::seg]
        sq = squares[:, :span]
    else:
        if made:
            np.multiply(x[:-1], x[1:], out=lag[:-1])
        first, last, cross = x[::seg].T, x[seg - 1::seg].T, lag[seg - 1::seg].T
        sq = squares[:span]
    first, last = first.astype(np.float64), last.astype(np.float64)
    s1 = _segment_sums(x, axis, seg, count)
    s2 = _segment_sums(sq.astype(dtype, copy=False), axis, seg, count)
    pairs = _segment_sums(lag, axis, seg, count) - cross.astype(np.float64)
    mean = s1 / seg
    sum_a, sum_b = s1 - last, s1 - first  # the pixels with a right (lower) neighbour, and those with a left one
    tail = (seg - 1) * mean * mean
    cov = pairs - mean * (sum_a + sum_b) + tail
    var_a = (s2 - last * last) - 2 * mean * sum_a + tail
    var_b = (s2 - first * first) - 2 * mean * sum_b + tail
    denom = np.sqrt(np.clip(var_a * var_b, 0.0, None))
    autocorr = np.where(denom > 1e-9, cov / np.maximum(denom, 1e-12), 1.0)
    std = np.sqrt(np.clip(s2 / seg - mean * mean, 0.0, None))
    noisy = (autocorr < config.lost_noise_autocorr) & (std >= config.lost_noise_std * global_std)
    share = noisy.mean(axis=1)
    flat_share = np.zeros(lines) if tolerance is None else (std < tolerance).mean(axis=1)
    flat = flat_share >= config.lost_stripe_cover
    weak = share >= _WEAK_SHARE
    if count < _LINE_MIN_SEGMENTS:  # a short line's own statistics are dominated by a noise hole it crosses
        return share >= config.lost_stripe_cover, flat, weak
    # the whole line's own statistics: a noise-filled dropout line whose fill is a little weaker than the tissue
    # fails the spread test in many short segments by chance, but not over its whole length
    n = float(span)
    t1, t2, tp = s1.sum(axis=1), s2.sum(axis=1), (pairs + cross.astype(np.float64)).sum(axis=1)
    head, end = first[:, 0], last[:, -1]
    m = t1 / n
    tail = (n - 1) * m * m
    cov = tp - m * ((t1 - end) + (t1 - head)) + tail
    var_a = (t2 - end * end) - 2 * m * (t1 - end) + tail
    var_b = (t2 - head * head) - 2 * m * (t1 - head) + tail
    denom = np.sqrt(np.clip(var_a * var_b, 0.0, None))
    whole = np.where(denom > 1e-9, cov / np.maximum(denom, 1e-12), 1.0) < config.lost_noise_autocorr
    whole &= np.sqrt(np.clip(t2 / n - m * m, 0.0, None)) >= config.lost_noise_std * global_std
    return (share >= config.lost_stripe_cover) | (whole & (share >= _LINE_MIN_SHARE)), flat, weak


def _line_counts(mask: np.ndarray, axis: int, cover: float) -> np.ndarray:
    """True pixels per row (axis 1) or column (axis 0) of a bool mask; zeros when the whole mask holds fewer
    than ``cover`` of a line (then no line reaches it, and counting is skipped)."""
    total = np.count_nonzero(mask)
    length = mask.shape[axis]
    if total / length < cover:
        return np.zeros(mask.shape[1 - axis], np.int32)
    counts = cv2.reduce(mask.view(np.uint8), axis, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
    return counts.reshape(-1)


def _stripe_lines(values: np.ndarray, cell: int, config: DetectConfig, median: float, global_std: float,
                  extremes: tuple[float, float], dtype: type,
                  squares: np.ndarray | None = None,
                  products: tuple[np.ndarray, np.ndarray] | None = None,
                  tolerance: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows and columns that lie, nearly all along, at the section's black or white end (measured from the
    tissue's ``median``), or that are noise, or flat (standard deviation below ``tolerance``, when given), along
    their whole length; and which of them are noise. ``extremes``: the section's minimum and maximum; ``squares``: ``values ** 2`` in
    ``dtype`` when made; ``products``: ``_products`` (the stripe search zeroes their last column and row, and
    uses them up)."""
    lo, hi = extremes
    if squares is None or squares.dtype != dtype:
        squares = values.astype(dtype, copy=False) ** 2
    right = lower = None
    if products is not None:  # the lines' own lag products: none beyond the last pixel
        right, lower = products
        right[:, -1], lower[-1] = 0.0, 0.0
    rows, flat_rows, weak_rows = _line_tests(values, squares, 1, cell, config, global_std, dtype, right, tolerance)
    cols, flat_cols, weak_cols = _line_tests(values, squares, 0, cell, config, global_std, dtype, lower, tolerance)
    noisy_rows, noisy_cols = _hysteresis(rows, weak_rows), _hysteresis(cols, weak_cols)
    rows, cols = noisy_rows | flat_rows, noisy_cols | flat_cols
    if hi > lo:
        h, w = values.shape
        for extreme in (values <= lo + config.lost_stripe_level * (median - lo),
                        values >= hi - config.lost_stripe_level * (hi - median)):
            rows |= _line_counts(extreme, 1, config.lost_stripe_cover) / w >= config.lost_stripe_cover
            cols |= _line_counts(extreme, 0, config.lost_stripe_cover) / h >= config.lost_stripe_cover
    return rows, cols, noisy_rows, noisy_cols


def _hysteresis(strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """The runs of consecutive ``weak | strong`` lines that hold a ``strong`` one: a noise stripe's lines whose
    own test failed by chance (noise over a short line) join it, and no weak line stands alone."""
    if not strong.any():
        return strong
    either = np.concatenate([[False], weak | strong, [False]])
    starts = np.flatnonzero(either[1:] & ~either[:-1])
    ends = np.flatnonzero(~either[1:] & either[:-1])
    counts = np.add.reduceat(np.concatenate([strong, [False]]).astype(np.int32), starts) if starts.size else []
    out = np.zeros_like(strong)
    for start, end, count in zip(starts, ends, counts):
        if count:
            out[start:end] = True
    return out


def _sharp_lines(values: np.ndarray, lines: np.ndarray, noisy: np.ndarray, axis: int, tolerance: float,
                 max_share: float = _EDGE_SHARE) -> np.ndarray:
    """The ``lines`` (rows for axis 1, columns for axis 0) in runs that are a constant or near-black fill (no line
    of theirs ``noisy``) with a sharp edge each side: under ``max_share`` of the line just beyond lies within
    ``tolerance`` plus twice the fill's spread of the fill's median (a dropout stripe; a torn part whose edge
    crosses the next lines is not sharp, and its cells keep growing into them)."""
    out = np.zeros_like(lines)
    if not lines.any():
        return out
    padded = np.concatenate([[False], lines, [False]])
    starts = np.flatnonzero(padded[1:] & ~padded[:-1])
    ends = np.flatnonzero(~padded[1:] & padded[:-1])
    line = (lambda i: values[i]) if axis == 1 else (lambda i: values[:, i])
    for start, end in zip(starts, ends):
        if noisy[start:end].any():
            continue
        sharp = True
        for inside, beyond in ((start, start - 1), (end - 1, end)):
            if not 0 <= beyond < lines.size:
                continue
            fill = line(inside)
            level, spread = float(np.median(fill)), float(fill.std())
            near = np.abs(line(beyond) - level) <= tolerance + 2.0 * spread
            sharp &= float(near.mean()) < max_share
        out[start:end] = sharp
    return out
