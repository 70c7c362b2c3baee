"""The z cue for folds: a fold lies in one section only, so at the same place its neighbours show tissue.

A membrane, a vessel or a long dark process that looks like a faint or broken band persists into the
sections before and after (at 4-50 nm per section, structures are several sections deep); a support-film
fold does not. Along a candidate's traced centre, the band's contrast against the tissue beside it (1 - band
level / side level, per position) is measured in the section and, with the same geometry, in each
neighbour at the same place (for the least certain candidates also moved across by up to a width: a
persisting membrane drifts between sections); the candidate is confirmed where the section's band is
clearly darker than the darkest of these. Contrast is a ratio of nearby samples, so each neighbour's own brightness
divides out and no tissue level is needed for it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from emrepair.detection.fold_geometry import FoldCurve

_SAMPLES = 64
_SMOOTH = 5  # neighbouring positions (of _SAMPLES) averaged before the section's and the neighbours' are compared


@dataclass(frozen=True)
class ZEvidence:
    """How much darker a candidate band is in its section than in its neighbours.

    Attributes:
        excess: median over positions of the section's band contrast minus the neighbours' largest (at the same
            place or moved across by up to a width).
        coverage: share of positions where that excess is at least half ``ZCue.min_excess``.
        neighbours: how many neighbours were compared.
    """

    excess: float
    coverage: float
    neighbours: int


def band_contrast(image: np.ndarray, curve: FoldCurve, width: float, samples: int = _SAMPLES) -> np.ndarray:
    """Per position along ``curve`` (``samples`` between s0 and s1): 1 - the band's centre level over the
    level (mean of 4 samples from 2 px beyond the edge out to a width) of the darker of its two sides, sampled in ``image`` (intensities above black); NaN where both
    sides lie outside the image."""
    s = np.linspace(curve.s0, curve.s1, samples)
    centre = curve.points(s)
    normal = curve.normal
    core = max(0.5, width / 4)
    inner = width / 2 + 2.0
    outer = inner + max(3.0, width)
    offsets = np.concatenate([np.linspace(-core, core, 3), -np.linspace(inner, outer, 4), np.linspace(inner, outer, 4)])
    xs = (centre[:, 0:1] + offsets[None, :] * normal[0]).astype(np.float32)
    ys = (centre[:, 1:2] + offsets[None, :] * normal[1]).astype(np.float32)
    values = cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        left = np.nanmean(values[:, 3:7], axis=1)
        right = np.nanmean(values[:, 7:], axis=1)
        band = np.nanmean(values[:, :3], axis=1)
        side = np.fmin(left, right)
        return 1.0 - band / np.where(side > 1e-6, side, np.nan)


def _running_mean(values: np.ndarray, k: int) -> np.ndarray:
    """Mean of each run of ``k`` neighbouring positions (NaN left out; NaN where all are)."""
    ok = np.isfinite(values)
    kernel = np.ones(k)
    num = np.convolve(np.where(ok, values, 0.0), kernel, mode="same")
    den = np.convolve(ok.astype(float), kernel, mode="same")
    with np.errstate(all="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _most_contrasted(contrasts: list[np.ndarray]) -> np.ndarray:
    """Of several per-position contrasts (one band at several shifts), the one with the largest median."""
    medians = [float(np.median(c[np.isfinite(c)])) if np.isfinite(c).any() else -np.inf for c in contrasts]
    return contrasts[int(np.argmax(medians))]


def _shifted(curve: FoldCurve, offset: float) -> FoldCurve:
    """The same curve moved ``offset`` pixels along its chord's normal."""
    c0, c1, c2 = curve.coeffs
    return FoldCurve(curve.origin, curve.tangent, (c0 + offset, c1, c2), curve.s0, curve.s1, curve.detail)


class ZCue:
    """A section and its neighbours (each intensities above its own black, at any scale), to check
    candidates against.

    ``min_excess``: the band must be this much more contrasted in the section than in its neighbours.
    """

    def __init__(self, unit, neighbours: list[np.ndarray], min_excess: float = 0.1):
        self._unit = unit
        self.neighbours = neighbours
        self.min_excess = min_excess

    @property
    def unit(self) -> np.ndarray:
        """The section (intensities above black); given as an array or as a zero-argument callable that makes
        it, called when first needed (most sections have no candidate to check)."""
        if callable(self._unit):
            self._unit = self._unit()
        return self._unit

    @classmethod
    def build(cls, unit, neighbours, min_excess: float = 0.1,
              shape: tuple[int, int] | None = None) -> ZCue | None:
        """A cue from the section (``unit``: intensities over its tissue median, above black; or a callable
        making it, with its ``shape``) and its neighbours (cleaned float sections of the same shape, or None);
        None unless both are usable."""
        if neighbours is None:
            return None
        shape = tuple(unit.shape) if shape is None else tuple(shape)
        usable = []
        for nb in neighbours:
            if nb is None or nb.shape != shape:
                continue
            sample = np.asarray(nb[::8, ::8], np.float32)  # contrast is a ratio: only black matters, not scale
            black = min(0.0, float(sample.min()))
            if not np.isfinite(sample).all() or float(sample.max()) <= max(black, float(sample.min())):
                continue  # blank or constant: no witness
            usable.append(nb if black == 0.0 else np.asarray(nb, np.float32) - np.float32(black))
        # one neighbour is too weak a witness: in ssTEM a membrane can leave the next section
        return cls(unit, usable, min_excess) if len(usable) == 2 else None

    def evidence(self, curve: FoldCurve, width: float, drift: bool = False) -> ZEvidence:
        """Compare the band along ``curve`` (full-resolution pixels) in the section and its neighbours; with
        ``drift``, also with the neighbours' band moved across by up to a width."""
        own = band_contrast(self.unit, curve, width)
        # a persisting membrane or process may have moved across the band by up to a width between sections
        # (a whole band moves together: per neighbour, the shift at which its band is most contrasted)
        step = max(2.0, 0.5 * width)
        theirs = np.stack([_most_contrasted([band_contrast(nb, _shifted(curve, k * step), width)
                                             for k in ((-2, -1, 0, 1, 2) if drift else (-1, 0, 1))])
                           for nb in self.neighbours])
        # a band is alike along its length, tissue is not: contrasts are averaged over _SMOOTH positions first
        own = _running_mean(own, _SMOOTH)
        theirs = np.stack([_running_mean(t, _SMOOTH) for t in theirs])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            excess = own - np.max(theirs, axis=0)  # NaN where either neighbour is no witness
        known = excess[np.isfinite(excess)]  # (positions where both sides lie outside the image drop out)
        if known.size < _SAMPLES // 4:
            return ZEvidence(0.0, 0.0, len(self.neighbours))
        return ZEvidence(float(np.median(known)), float(np.mean(known >= 0.5 * self.min_excess)),
                         len(self.neighbours))

    def confirms(self, curve: FoldCurve, width: float, drift: bool = False) -> tuple[bool, ZEvidence]:
        """Whether the band is a fold by the z cue: clearly darker than in its neighbours along most of it."""
        ev = self.evidence(curve, width, drift)
        return ev.excess >= self.min_excess and ev.coverage >= 0.6, ev
