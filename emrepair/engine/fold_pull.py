"""The tissue a fold pulls toward its band: measured against the neighbours, and pushed back.

Beside a fold the tissue is dragged toward the band for tens of pixels, by most at the band's edge and less
farther away. Per fold (a group of band pixels), the pull is modelled as ``amp * exp(-d / decay)`` pixels
toward the band at distance ``d`` from it: ``folded(p) = clean(p + m(p) n(p))`` with ``n`` the unit vector
away from the band. ``amp`` and ``decay`` are chosen on a grid as the pair under which the neighbours' average,
sampled at ``p + m n``, correlates best with the folded section over the pixels beside the band (smoothed a
little). The fit is used only where the neighbours resemble the folded section closely there (FIB-SEM-like
stacks, correlation at least ``MIN_NCC``); ssTEM neighbours 50 nm apart correlate too weakly for the fit to be
trusted (benchmarks/bench_fix_folds.py; docs/models.md). A fit must also close at least ``REL_GAIN`` of the gap
between that correlation and 1.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

AMPS = tuple(float(a) for a in range(25))  # candidate pulls at the band's edge (px)
DECAYS = (6.0, 12.0, 24.0, 48.0)  # candidate e-folding distances (px)
REACH = 120  # pixels beside the band that the fit looks at
MIN_NCC = 0.6  # the neighbours must correlate at least this well with the folded section beside the band
REL_GAIN = 0.1  # and the best pull must close at least this share of the gap between that correlation and 1
MIN_SHIFT = 0.25  # pixels moved by less than this stay as they are
MOVE_REACH = 96  # no pixel farther than this from the band moves (the pull tapers to 0 from TAPER_FROM)
TAPER_FROM = 64
_GROUP_GAP = 49  # band pieces closer than this are one fold (a broken fold still pulls along its gaps)
_SAMPLES = 200_000


class Pull(NamedTuple):
    """One fold's fitted pull: edge displacement ``amp`` (px), ``decay`` (px) and the correlations."""

    amp: float
    decay: float
    ncc_zero: float
    ncc_best: float

    @property
    def trusted(self) -> bool:
        """Whether the fit is reliable enough to move pixels."""
        return (self.amp > 0 and self.ncc_zero >= MIN_NCC
                and self.ncc_best - self.ncc_zero >= REL_GAIN * (1.0 - self.ncc_zero))


def _away(band: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance to ``band`` and the unit (dy, dx) pointing away from it, per pixel."""
    dist = cv2.distanceTransform((~band).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    gy, gx = np.gradient(cv2.GaussianBlur(dist, (0, 0), 2.0))
    norm = np.hypot(gx, gy) + 1e-6
    return dist, (gy / norm).astype(np.float32), (gx / norm).astype(np.float32)


def sample(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at float coordinates (any count; border reflected)."""
    n = y.size
    cols = 4096
    rows = max(1, -(-n // cols))
    pad = rows * cols - n
    my = np.pad(y.astype(np.float32).ravel(), (0, pad)).reshape(rows, cols)
    mx = np.pad(x.astype(np.float32).ravel(), (0, pad)).reshape(rows, cols)
    return cv2.remap(image.astype(np.float32), mx, my, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT).reshape(-1)[:n]


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def fold_groups(band: np.ndarray) -> list[np.ndarray]:
    """The band split into folds: pieces closer than ``_GROUP_GAP`` px belong to one."""
    joined = cv2.dilate(band.astype(np.uint8), np.ones((_GROUP_GAP, _GROUP_GAP), np.uint8))
    count, labels = cv2.connectedComponents(joined, connectivity=8)
    return [band & (labels == i) for i in range(1, count) if (band & (labels == i)).any()]


def fit_pull(folded: np.ndarray, reference: np.ndarray, band: np.ndarray, zone: np.ndarray | None = None,
             sigma: float = 2.0) -> Pull:
    """The pull of one fold (``band``) that best explains ``folded`` from ``reference`` (the neighbours'
    average) over ``zone`` (default: every pixel within ``REACH`` px of the band, outside it)."""
    dist, ny, nx = _away(band)
    if zone is None:
        zone = (dist > 0.5) & (dist < REACH)
    ys, xs = np.nonzero(zone)
    if ys.size < 256:
        return Pull(0.0, DECAYS[0], 0.0, 0.0)
    keep = np.arange(ys.size)[:: max(1, ys.size // _SAMPLES)]
    ys, xs = ys[keep], xs[keep]
    f = cv2.GaussianBlur(folded.astype(np.float32), (0, 0), sigma)[ys, xs]
    ref = cv2.GaussianBlur(reference.astype(np.float32), (0, 0), sigma)
    d, vy, vx = dist[ys, xs], ny[ys, xs], nx[ys, xs]
    zero = _ncc(f, ref[ys, xs])
    best = (zero, 0.0, DECAYS[0])
    for decay in DECAYS:
        falloff = np.exp(-d / decay)
        for amp in AMPS[1:]:
            m = amp * falloff
            score = _ncc(f, sample(ref, ys + m * vy, xs + m * vx))
            if score > best[0]:
                best = (score, amp, decay)
    return Pull(best[1], best[2], zero, best[0])


def push_back(folded: np.ndarray, band: np.ndarray, pulls: list[tuple[np.ndarray, Pull]]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``folded`` with each trusted pull undone: ``(image, moved, hidden)``.

    ``moved`` marks the pixels outside the band that were resampled (shift of at least ``MIN_SHIFT``),
    ``hidden`` those whose tissue now lies under the band (they need filling like the band itself). No pixel
    farther than ``MOVE_REACH`` from the band moves.
    """
    h, w = band.shape
    sy = np.zeros((h, w), np.float32)
    sx = np.zeros((h, w), np.float32)
    for group, pull in pulls:
        if not pull.trusted:
            continue
        dist, ny, nx = _away(group)
        taper = np.clip((MOVE_REACH - dist) / (MOVE_REACH - TAPER_FROM), 0.0, 1.0)
        m = (pull.amp * np.exp(-dist / pull.decay) * taper).astype(np.float32)
        sy -= m * ny
        sx -= m * nx
    shift = np.hypot(sy, sx)
    moved = (shift >= MIN_SHIFT) & ~band
    if not moved.any():
        return folded.copy(), moved, np.zeros_like(band)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    src_y, src_x = yy + sy, xx + sx
    out = cv2.remap(folded.astype(np.float32), src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    under = cv2.remap(band.astype(np.float32), src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    hidden = moved & (under > 0.01)
    image = np.where(moved, out, folded).astype(np.float32)
    return image, moved, hidden


def unpull(folded: np.ndarray, reference: np.ndarray, band: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Pull]]:
    """Fit every fold's pull (each over the pixels nearer to it than to any other fold) and undo the trusted
    ones: ``(image, moved, hidden, pulls)`` as :func:`push_back`, plus the fits."""
    groups = fold_groups(band)
    fits: list[tuple[np.ndarray, Pull]] = []
    if len(groups) > 1:
        dists = np.stack([_away(g)[0] for g in groups])
        nearest = dists.argmin(axis=0)
    for i, group in enumerate(groups):
        dist = _away(group)[0]
        zone = (dist > 0.5) & (dist < REACH) & ~band
        if len(groups) > 1:
            zone &= nearest == i
        fits.append((group, fit_pull(folded, reference, group, zone)))
    image, moved, hidden = push_back(folded, band, fits)
    return image, moved, hidden, [p for _, p in fits]
