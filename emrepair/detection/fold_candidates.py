"""Candidate lines for fold detection: probabilistic Hough segments (as Huang et al.) over a pass's dark pixels,
and, for the dark pass, the principal axes of long thin dark components (thin lines that wander)."""

from __future__ import annotations

import cv2
import numpy as np

from emrepair.detection.fold_scales import FoldPass

_THIN_PX = 4.0  # lines up to this wide (full-resolution px) are also looked for as whole components


def candidate_segments(ratio: np.ndarray, spec: FoldPass) -> np.ndarray:
    """Hough segments (N, 4) of x0, y0, x1, y1 over the pass's dark pixels, longest first; for the dark pass then
    the principal axes of long, thin dark components (``thin_lines``)."""
    h, w = ratio.shape
    side = min(h, w)
    votes, shortest = spec.hough
    threshold = max(10, int(votes * side))
    dark = (ratio < spec.dark).astype(np.uint8)
    if int(dark.sum()) < threshold:  # a line of ``threshold`` votes needs as many dark pixels
        return np.zeros((0, 4), np.float32)
    _count, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    keep = extent >= spec.min_extent * side
    keep[0] = False
    if int(stats[keep, cv2.CC_STAT_AREA].sum()) < threshold:
        return np.zeros((0, 4), np.float32)
    dark = keep.astype(np.uint8)[labels] * np.uint8(255)
    segments = cv2.HoughLinesP(dark, 1, np.pi / 180, threshold=threshold,
                               minLineLength=max(8, int(shortest * side)), maxLineGap=max(3, int(0.03 * side)))
    segments = np.zeros((0, 4), np.float32) if segments is None else segments.reshape(-1, 4).astype(np.float32)
    lengths = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
    segments = segments[np.argsort(-lengths)]
    if spec.name == "dark":  # thin lines that wander: one long component, no long straight segment (tried last)
        segments = np.concatenate([segments, thin_lines(labels, stats, keep, side, _THIN_PX / spec.factor + 1)])
    return segments


def thin_lines(labels: np.ndarray, stats: np.ndarray, keep: np.ndarray, side: int, thick: float) -> np.ndarray:
    """Segments (N, 4) along the principal axis of each long, thin dark component (extent at least half the
    shorter side, at most ``thick`` pixels thick on average): a thin line that wanders gives no long straight
    Hough segment but is one such component."""
    extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    diagonal = np.hypot(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    chosen = np.flatnonzero(keep & (extent >= 0.5 * side) & (stats[:, cv2.CC_STAT_AREA] <= thick * diagonal))
    out = []
    for i in chosen[:8]:
        x, y, w, h = stats[i, :4]
        ys, xs = np.nonzero(labels[y:y + h, x:x + w] == i)
        pts = np.stack([xs + x, ys + y], axis=1).astype(np.float64)
        centre = pts.mean(axis=0)
        _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
        along = (pts - centre) @ vt[0]
        out.append([*(centre + along.min() * vt[0]), *(centre + along.max() * vt[0])])
    return np.asarray(out, np.float32).reshape(-1, 4)
