"""Find support-film folds in one section: dark, long, straight or slightly curved bands.

Candidates come from a probabilistic Hough transform of the section's darkest pixels at a reduced scale
(as Huang et al. detect folds); each is then followed along its chord with perpendicular profiles, which
rejects membranes, mitochondria and dark blobs (they are not dark along most of a long line with a
consistent width), and refined at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from emrepair.detect.config import DetectConfig
from emrepair.detect.fold_geometry import FoldCurve, chord_through, realign
from emrepair.detect.fold_trace import Trace, trace_band

_MAX_CANDIDATES = 8


@dataclass
class FoldFinding:
    """One fold in full-resolution pixels: centre curve, width, score and the measures behind the score."""

    curve: FoldCurve
    width_px: float
    score: float
    coverage: float
    band_ratio: float


def working_factor(config: DetectConfig) -> int:
    """Downsampling factor at which the narrowest fold is still about 2.5 pixels wide."""
    return max(1, int(config.fold_min_width_px // 2.5))


def _candidate_segments(ratio: np.ndarray, config: DetectConfig) -> np.ndarray:
    """Hough segments (N, 4) of x0, y0, x1, y1 over the darkest pixels, longest first."""
    h, w = ratio.shape
    side = min(h, w)
    dark = (ratio < config.fold_dark_ratio).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    keep = (extent >= 0.2 * side).astype(np.uint8)
    keep[0] = 0
    dark = keep[labels] * np.uint8(255)
    segments = cv2.HoughLinesP(dark, 1, np.pi / 180, threshold=max(10, int(0.15 * side)),
                               minLineLength=max(8, int(0.25 * side)), maxLineGap=max(3, int(0.03 * side)))
    if segments is None:
        return np.zeros((0, 4), np.float32)
    segments = segments.reshape(-1, 4).astype(np.float32)
    lengths = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
    return segments[np.argsort(-lengths)]


def _trace_candidate(ratio: np.ndarray, segment: np.ndarray, config: DetectConfig, factor: int) -> Trace | None:
    """Follow one Hough segment at the working scale."""
    p0, p1 = segment[:2].astype(np.float64), segment[2:].astype(np.float64)
    tangent = (p1 - p0) / max(np.linalg.norm(p1 - p0), 1e-9)
    chord = chord_through(p0, tangent, ratio.shape)
    if chord is None:
        return None
    origin, length = chord
    # the Hough line lies on the band: its offset from the chord through p0 is zero
    curve = FoldCurve(origin, tangent, (0.0, 0.0, 0.0), 0.0, length)
    half = int(config.fold_max_width_px / factor / 2 + 0.06 * length + 3)
    widths = (0.4 * config.fold_min_width_px / factor, config.fold_max_width_px / factor)
    first = trace_band(ratio, curve, length, half, tol=3.0, edge_ratio=config.fold_edge_ratio, width_range=widths)
    if first is None:
        return None
    # the Hough segment may cross a wide band at an angle: trace again along the band's own chord
    aligned = realign(first.curve, ratio.shape)
    if aligned is None:
        return None
    curve, length = aligned
    half = int(first.width / 2 + _bow(curve, length) + 6)
    return trace_band(ratio, curve, length, half, tol=3.0, edge_ratio=config.fold_edge_ratio, width_range=widths)


def _bow(curve: FoldCurve, length: float) -> float:
    """Largest offset of the curve from its chord over [0, length]."""
    s = np.linspace(0.0, length, 32)
    return float(np.abs(curve.offset(s)).max())


def _refine(full_ratio: np.ndarray, coarse: Trace, config: DetectConfig, factor: int) -> Trace | None:
    """Re-trace a working-scale band on the full-resolution section for exact centre and width."""
    aligned = realign(coarse.curve.scaled(factor), full_ratio.shape)
    if aligned is None:
        return None
    start, length = aligned
    half = int(coarse.width * factor / 2 + _bow(start, length) + 3 * factor + 3)
    widths = (0.4 * config.fold_min_width_px, config.fold_max_width_px * 1.2)
    return trace_band(full_ratio, start, length, half, tol=2.0 * factor, edge_ratio=config.fold_edge_ratio,
                      width_range=widths, passes=2)


def _score(trace: Trace, length_fraction: float, config: DetectConfig) -> float:
    """Fold score in [0, 1]: coverage of a long band, times how dark it is, times how long."""
    darkness = np.clip((0.6 - trace.band_ratio) / 0.35, 0.0, 1.0)
    length = np.clip(length_fraction / config.fold_min_length, 0.0, 1.0)
    consistency = np.clip(1.5 - trace.width_spread, 0.0, 1.0)
    return float(trace.coverage * darkness * length * consistency)


def _same_band(a: FoldCurve, b: FoldCurve, width: float) -> bool:
    """Whether curve ``b`` runs along curve ``a`` (their centres within a band width)."""
    s = np.linspace(b.s0, b.s1, 16)
    pts = b.points(s) - a.origin[None, :]
    along = pts @ a.tangent
    across = pts @ a.normal
    return bool(np.median(np.abs(across - a.offset(along))) < max(width, 3.0))


def find_folds(values: np.ndarray, black: float, median: float, config: DetectConfig,
               half: np.ndarray | None = None) -> list[FoldFinding]:
    """All folds in a cleaned float32 section whose intensities are measured above ``black``.

    ``half`` may pass the section already area-averaged 2x2, reused when the working factor is 2.
    """
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D section, got shape {values.shape}")
    h, w = values.shape
    if min(h, w) < 32 or median - black <= 0:
        return []
    factor = working_factor(config)
    gain = np.float32(1.0 / (median - black))
    full_ratio = (values - np.float32(black)) * gain
    ratio = full_ratio
    if factor == 2 and half is not None:
        ratio = (half - np.float32(black)) * gain
    elif factor > 1:
        ratio = cv2.resize(full_ratio, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    found: list[FoldFinding] = []
    for segment in _candidate_segments(ratio, config)[:_MAX_CANDIDATES]:
        if any(_same_band(f.curve.scaled(1.0 / factor), _segment_curve(segment), f.width_px / factor) for f in found):
            continue
        coarse = _trace_candidate(ratio, segment, config, factor)
        if coarse is None or coarse.coverage < config.fold_min_coverage:
            continue
        fine = _refine(full_ratio, coarse, config, factor) if factor > 1 else coarse
        if fine is None:
            continue
        length_fraction = (fine.curve.s1 - fine.curve.s0) / min(h, w)
        if length_fraction < config.fold_min_length:
            continue
        score = _score(fine, length_fraction, config)
        if score < config.fold_threshold or fine.coverage < config.fold_min_coverage:
            continue
        if any(_same_band(f.curve, fine.curve, f.width_px) for f in found):
            continue
        found.append(FoldFinding(fine.curve, fine.width, score, fine.coverage, fine.band_ratio))
    return found


def _segment_curve(segment: np.ndarray) -> FoldCurve:
    """A straight FoldCurve along a Hough segment."""
    p0, p1 = segment[:2].astype(np.float64), segment[2:].astype(np.float64)
    length = max(float(np.linalg.norm(p1 - p0)), 1e-9)
    return FoldCurve(p0, (p1 - p0) / length, (0.0, 0.0, 0.0), 0.0, length)
