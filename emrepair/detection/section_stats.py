"""Per-section intensity statistics: how much of a section is lost, and whether it is pure noise."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from emrepair.detection.config import DetectConfig


@dataclass
class SectionStats:
    """What one section's pixels say about it, without looking at its neighbours.

    Attributes:
        black: intensity taken as black (0, or the finite minimum for data with negative values).
        median: median of the finite pixels.
        nonfinite_fraction: fraction of NaN / inf pixels.
        lost_fraction: fraction of the section that is flat (textureless) or non-finite.
        autocorr: lag-1 horizontal autocorrelation (EM ≈ 0.8-0.95, pure noise ≈ 0).
        levels: the 1, 50 and 99 % percentiles of every fourth pixel (``values[::4, ::4]``), shared with the
            lost-region search.
    """

    black: float
    median: float
    nonfinite_fraction: float
    lost_fraction: float
    autocorr: float
    levels: tuple[float, float, float] | None = None


def clean_section(section: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Return the section as float32 with non-finite pixels replaced by the finite median, and their mask."""
    if section.ndim != 2:
        raise ValueError(f"expected a 2-D section, got shape {section.shape}")
    values = section.astype(np.float32, copy=False)
    if section.dtype.kind != "f":
        return values, None
    finite = np.isfinite(values)
    if finite.all():
        return values, None
    fill = float(np.median(values[finite])) if finite.any() else 0.0
    return np.where(finite, values, np.float32(fill)), ~finite


def median(values: np.ndarray) -> float:
    """``float(np.median(values))`` of a 1-D float array, without np.median's per-call overhead (a quarter of
    its time on the few hundred values of a block map): the same partition, middle values and NaN rule."""
    n = values.size
    if n < 2 or values.ndim != 1 or values.dtype.kind != "f":
        return float(np.median(values))
    k = n // 2
    part = np.partition(values, [k - 1, k, n - 1] if n % 2 == 0 else [k, n - 1])
    if np.isnan(part[-1]):
        return float("nan")
    return float(part[k]) if n % 2 else float((part[k - 1] + part[k]) / 2)


def _block_fraction(mask: np.ndarray, block: int) -> np.ndarray:
    """Per-block fraction of True pixels."""
    h, w = mask.shape
    return cv2.resize(mask.astype(np.float32), (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)


def half_size(values: np.ndarray) -> np.ndarray:
    """The section area-averaged 2x2 (shared by the statistics and the fold search)."""
    h, w = values.shape
    if min(h, w) < 2:
        return values
    return cv2.resize(values, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def section_stats(values: np.ndarray, nonfinite: np.ndarray | None, config: DetectConfig,
                  half: np.ndarray | None = None) -> SectionStats:
    """Statistics of a cleaned float32 section (see ``clean_section``); ``half`` is ``half_size(values)``."""
    h = values.shape[0]
    sample = half if half is not None else half_size(values)
    sparse = values[::4, ::4]
    lo, median, hi = (float(v) for v in np.percentile(sparse, [1, 50, 99]))
    minimum = float(sparse.min())
    black = 0.0 if minimum >= 0 else minimum
    block = max(1, config.flat_block_px // 2)  # the sample is already 2x downsampled
    bh, bw = max(1, sample.shape[0] // block), max(1, sample.shape[1] // block)
    mean = cv2.resize(sample, (bw, bh), interpolation=cv2.INTER_AREA)
    mean_sq = cv2.resize(sample * sample, (bw, bh), interpolation=cv2.INTER_AREA)
    std = np.sqrt(np.clip(mean_sq - mean * mean, 0.0, None))
    scale = max(hi - lo, 1e-6 * max(1.0, abs(median)))
    # float32 block variances carry rounding noise of about |mean| * 1e-3
    tolerance = max(config.flat_tolerance * scale, 1e-3 * abs(median))
    lost = std < tolerance
    nonfinite_fraction = 0.0
    if nonfinite is not None:
        nonfinite_fraction = float(nonfinite.mean())
        lost |= _block_fraction(nonfinite[::2, ::2], block)[:bh, :bw] > 0.5
    lost_fraction = float(lost.mean()) if hi > lo else 1.0
    rows = values[:: max(1, h // 64)]
    left, right = rows[:, :-1], rows[:, 1:]
    autocorr = 0.0
    if left.size > 1:
        left, right = left - left.mean(), right - right.mean()
        denom = float(np.sqrt((left * left).sum() * (right * right).sum()))
        autocorr = float((left * right).sum() / denom) if denom > 0 else 0.0
    return SectionStats(black, median, nonfinite_fraction, lost_fraction, autocorr, (lo, median, hi))


def missing_score(stats: SectionStats, config: DetectConfig, explained: float = 0.0,
                  regions: float | None = None) -> float:
    """Missing score in [0, 1] from the section alone: above 0.5 means lost or pure noise.

    ``explained`` is a fraction of the section known to be something else (a black fold band), not lost.
    ``regions`` is the fraction lost in regions (emrepair.detection.lost_regions), when known: a section that
    keeps real tissue beside its lost regions is judged by how much is lost, not by its noise overall.
    """
    lost_fraction = max(0.0, max(stats.lost_fraction, regions or 0.0) - explained)
    lost = 0.5 + (lost_fraction - config.lost_fraction) / 0.4
    if lost_fraction >= 0.999:
        lost = 1.0
    # noise only counts where the rest of the section is not flat (a torn section keeps real texture)
    noise = 0.5 + (config.noise_autocorr - stats.autocorr) / 0.3
    if regions is not None and config.min_lost_fraction <= regions <= config.lost_fraction:
        noise = 0.0  # the noise lies in the lost regions; the rest is tissue
    return float(np.clip(max(lost, noise), 0.0, 1.0))
