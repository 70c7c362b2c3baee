"""Find support-film folds in one section: dark, long, straight or gently curved bands crossing it.

Candidates come from probabilistic Hough transforms of the section's darkest pixels (as Huang et al.
detect folds), in three passes over the section's darkness against its local tissue (see
``fold_scales``): thin near-black lines at full resolution, dark bands at the working scale and faint bands
on a coarse copy. Each candidate is followed along its chord with perpendicular profiles (joining broken
pieces, following curves), refined at full resolution and kept when it is dark against the tissue on both
sides along most of a stretch that crosses the section; membranes, mitochondria, dark blobs and short
streaks fail one of these. Its band is then segmented from the pixels (``fold_mask``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from emrepair.detection.config import DetectConfig
from emrepair.detection.fold_candidates import candidate_segments
from emrepair.detection.fold_geometry import FoldCurve, chord_through, realign
from emrepair.detection.fold_mask import segment_band, union_mask
from emrepair.detection.fold_scales import FoldPass, TissueLevel, fold_passes
from emrepair.detection.fold_trace import Trace, screen_band, trace_band
from emrepair.detection.fold_z import ZCue

_MAX_CANDIDATES = {"dark": 12, "faint": 6}  # candidates followed per pass (busy tissue gives many dark ones)
_MAX_SEGMENTS = 48  # Hough segments looked at per pass, the longest first
_GROW_BELOW = 0.6  # a first trace covering less of its stretch is traced again, grown from its Hough segment
_MAX_GAP = 0.15  # broken folds: pieces are joined over gaps of up to this fraction of the chord
_Z_MAX_GAP = 0.25  # with the z cue, over gaps up to this (a band joined over more than _MAX_GAP needs _Z_FIRM)
# with neighbours to compare (the z cue), a band may be broken or faint down to these; below
# _Z_FIRM_COVERAGE or above _Z_FIRM_SPREAD it needs the firmer z evidence of _Z_FIRM
_Z_MIN_COVERAGE = 0.35
_Z_MIN_SPAN = 0.7
_Z_MIN_CONTRAST = 0.15
_Z_MAX_SPREAD = 1.0
_Z_FIRM_COVERAGE = 0.45
_Z_FIRM_SPREAD = 0.5
_Z_FIRM = (0.15, 0.7)  # (excess, z coverage)
_Z_VETO = 0.05
_Z_FAINT_DARK = 0.8  # the faint pass's Hough input with the z cue (0.72 without)
_Z_FAINT_SCREEN = 0.15  # and the contrast its quick look asks of a position (0.25 without)


@dataclass
class FoldFinding:
    """One fold in full-resolution pixels: centre curve, width, score, the measures behind the score and
    its band mask (bool, the section's shape; None when not segmented)."""

    curve: FoldCurve
    width_px: float
    score: float
    coverage: float
    band_ratio: float
    mask: np.ndarray | None = field(default=None, repr=False)
    kind: str = "dark"
    contrast: float = 1.0
    width_spread: float = 0.0
    span: float = 1.0
    level_spread: float = 0.0


def working_factor(config: DetectConfig) -> int:
    """Downsampling factor at which the narrowest fold of the dark pass is still about 2.5 pixels wide."""
    return max(1, int(config.fold_min_width_px // 2.5))


def _trace_candidate(ratio: np.ndarray, segment: np.ndarray, spec: FoldPass, config: DetectConfig,
                     max_gap: float = _MAX_GAP) -> Trace | None:
    """Follow one Hough segment at the pass's scale, joining pieces over gaps up to ``max_gap`` of the chord."""
    f = spec.factor
    p0, p1 = segment[:2].astype(np.float64), segment[2:].astype(np.float64)
    tangent = (p1 - p0) / max(np.linalg.norm(p1 - p0), 1e-9)
    chord = chord_through(p0, tangent, ratio.shape)
    if chord is None:
        return None
    origin, length = chord
    tol = int(max(2, 0.03 * length))  # a gently curved fold stays this close to its chord
    curve = FoldCurve(origin, tangent, (0.0, 0.0, 0.0), 0.0, length)
    half = int(spec.widths[1] / f / 2 + 0.06 * length + 3)
    widths = (spec.widths[0] / f, spec.widths[1] / f)
    # a quick look first: most candidates in tissue end here
    coverage, span = screen_band(ratio, curve, length, half, tol + 1, spec.edge, widths, max_gap,
                                 min_contrast=spec.screen_contrast, smooth=spec.smooth)
    if coverage < 0.6 or span < 0.6:
        return None
    at = float((p0 - origin) @ tangent)  # where the segment lies along the chord: the trace grows from there
    seed = (at, at + float(np.linalg.norm(p1 - p0)))
    first = None
    for grow in (None, seed):  # along the straight chord first; grown from the segment when that follows little
        trace = trace_band(ratio, curve, length, half, tol=float(tol + 1), edge_ratio=spec.edge, width_range=widths,
                           passes=2, max_gap=max_gap, consistent=spec.consistent, smooth=spec.smooth,
                           min_contrast=spec.screen_contrast, seed=grow)
        if trace is not None and (first is None or trace.coverage * trace.span > first.coverage * first.span):
            first = trace
        if first is not None and first.coverage >= _GROW_BELOW:
            break
    if first is None:
        return None
    if abs(first.curve.coeffs[1]) < 0.02 and abs(first.curve.coeffs[2]) * length < 0.05 and first.span > 0.9:
        return first  # already along the band's own chord
    # the Hough segment may cross a wide band at an angle: trace again along the band's own chord
    aligned = realign(first.curve, ratio.shape)
    if aligned is None:
        return None
    curve, length = aligned
    half = int(first.width / 2 + _bow(curve, length) + 6)
    return trace_band(ratio, curve, length, half, tol=3.0, edge_ratio=spec.edge, width_range=widths,
                      max_gap=max_gap, consistent=spec.consistent, smooth=spec.smooth,
                      min_contrast=spec.screen_contrast)


def _bow(curve: FoldCurve, length: float) -> float:
    """Largest offset of the curve from its chord over [0, length]."""
    s = np.linspace(0.0, length, 32)
    return float(np.abs(curve.offset(s)).max())


def _refine(full_ratio: np.ndarray, coarse: Trace, spec: FoldPass,
            max_gap: float = _MAX_GAP) -> tuple[Trace, float] | None:
    """Re-trace a band on the full-resolution section for its exact centre and width; with the chord."""
    f = spec.factor
    aligned = realign(coarse.curve.scaled(f) if f > 1 else coarse.curve, full_ratio.shape)
    if aligned is None:
        return None
    start, length = aligned
    half = int(coarse.width * f / 2 + _bow(start, length) + 3 * f + 3)
    trace = trace_band(full_ratio, start, length, half, tol=2.0 * f, edge_ratio=spec.edge,
                       width_range=spec.widths, passes=2, max_gap=max_gap, consistent=spec.consistent,
                       smooth=spec.smooth, min_contrast=spec.screen_contrast)
    return None if trace is None else (trace, length)


def _score(trace: Trace, length_fraction: float, config: DetectConfig) -> float:
    """Fold score in [0, 1]: coverage of a long band, times how much darker than its sides, times length."""
    darkness = np.clip((trace.contrast - 0.15) / 0.2, 0.0, 1.0)
    length = np.clip(length_fraction / config.fold_min_length, 0.0, 1.0)
    consistency = np.clip(1.5 - trace.width_spread, 0.0, 1.0)
    coverage = np.clip(trace.coverage / config.fold_min_coverage, 0.0, 1.0)
    return float(coverage * darkness * length * consistency)


def _same_band(a: FoldCurve, b: FoldCurve, width: float) -> bool:
    """Whether curve ``b`` runs along curve ``a`` (their centres within a band width)."""
    s = np.linspace(b.s0, b.s1, 16)
    pts = b.points(s) - a.origin[None, :]
    along = pts @ a.tangent
    across = pts @ a.normal
    return bool(np.median(np.abs(across - a.offset(along))) < max(width, 3.0))


def _promising(coarse: Trace, spec: FoldPass, config: DetectConfig, z: bool = False) -> bool:
    """Whether a working-scale trace may pass ``_accept`` (``_accept_z`` when ``z``) at full resolution
    (with some slack), so that it is worth refining."""
    if z:
        return (coarse.coverage >= _Z_MIN_COVERAGE - 0.1 and coarse.span >= _Z_MIN_SPAN - 0.15
                and coarse.contrast >= 0.8 * _Z_MIN_CONTRAST)
    return (coarse.coverage >= max(config.fold_min_coverage_broken, spec.min_coverage) - 0.1
            and coarse.span >= config.fold_min_span - 0.15 and coarse.contrast >= 0.8 * config.fold_min_contrast)


def _accept(trace: Trace, shape: tuple[int, int], spec: FoldPass, config: DetectConfig) -> float:
    """The fold score of a full-resolution trace found by pass ``spec``, or 0 when it is not a fold."""
    length_fraction = (trace.curve.s1 - trace.curve.s0) / min(shape)
    if length_fraction < config.fold_min_length or trace.span < config.fold_min_span:
        return 0.0
    if trace.coverage < max(config.fold_min_coverage_broken, spec.min_coverage):
        return 0.0
    if trace.coverage < config.fold_min_coverage and trace.width_spread > 0.5:
        return 0.0  # broken pieces of one fold have one width; a chain of membranes does not
    if trace.contrast < config.fold_min_contrast or trace.gap > _MAX_GAP:
        return 0.0  # (pieces joined over a longer gap, with the z cue, need its firm evidence)
    score = _score(trace, length_fraction, config)
    return score if score >= config.fold_threshold else 0.0


def _accept_z(trace: Trace, shape: tuple[int, int], cue: ZCue, config: DetectConfig) -> float:
    """The fold score of a trace that ``_accept`` refused, by the z cue: a band that is faint or broken but
    long, of one width, and clearly darker than the same place in its neighbours; 0 when not a fold."""
    length_fraction = (trace.curve.s1 - trace.curve.s0) / min(shape)
    if length_fraction < config.fold_min_length or trace.span < _Z_MIN_SPAN:
        return 0.0
    if trace.coverage < _Z_MIN_COVERAGE or trace.contrast < _Z_MIN_CONTRAST or trace.width_spread > _Z_MAX_SPREAD:
        return 0.0
    if trace.coverage < _Z_FIRM_COVERAGE or trace.width_spread > _Z_FIRM_SPREAD or trace.gap > _MAX_GAP:
        # the least certain: firmer evidence, against the neighbours' band moved across by up to a width too
        ev = cue.evidence(trace.curve, trace.width, drift=True)
        confirmed = ev.excess >= _Z_FIRM[0] and ev.coverage >= _Z_FIRM[1]
    else:
        confirmed, ev = cue.confirms(trace.curve, trace.width)
    if not confirmed:
        return 0.0
    length = np.clip(length_fraction / config.fold_min_length, 0.0, 1.0)
    score = float(np.clip(ev.coverage / 0.8, 0, 1) * np.clip(ev.excess / 0.15, 0, 1) * length)
    return score if score >= config.fold_threshold else 0.0


def _not_persisting(trace: Trace, cue: ZCue, strict: bool) -> bool:
    """Whether a band the section alone accepts is absent from the same place in the neighbours: with
    ``strict`` (faint bands, which look most like tissue) confirmed by the z cue, else only not clearly
    present in them (darker than there by at least ``_Z_VETO``)."""
    confirmed, ev = cue.confirms(trace.curve, trace.width)
    return confirmed if strict else ev.excess >= _Z_VETO


def find_folds(values: np.ndarray, black: float, median: float, config: DetectConfig,
               half: np.ndarray | None = None, neighbours=None) -> list[FoldFinding]:
    """All folds in a cleaned float32 section whose intensities are measured above ``black``.

    ``neighbours``: the sections before and after (cleaned float32, the same shape; None for one that is
    missing or absent), for the z cue (``fold_z``): a faint or broken band that the section alone does not
    prove is a fold when it is clearly darker than the same place in its neighbours. ``half`` (the section
    area-averaged 2x2) is accepted for compatibility; the passes build their own images from the section's
    darkness against its local tissue.
    """
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D section, got shape {values.shape}")
    h, w = values.shape
    if min(h, w) < 32 or median - black <= 0:
        return []
    tissue = TissueLevel(values, black, median)
    cue = ZCue.build(lambda: tissue.unit, neighbours, shape=(h, w))
    found: list[FoldFinding] = []
    max_gap = _MAX_GAP if cue is None else _Z_MAX_GAP
    for spec in fold_passes((h, w), config.fold_min_width_px, config.fold_max_width_px):
        if cue is not None and spec.name == "faint":  # the z cue rejects what persists: look at fainter bands
            spec = replace(spec, dark=_Z_FAINT_DARK, screen_contrast=_Z_FAINT_SCREEN)
        ratio = tissue.at(spec)
        f = spec.factor
        tried: list[FoldCurve] = []
        # a fold gives many Hough segments: those along a band already found or a line already followed are
        # passed over without counting, so a second fold is still reached within _MAX_CANDIDATES
        for segment in candidate_segments(ratio, spec)[:_MAX_SEGMENTS]:
            if len(tried) >= _MAX_CANDIDATES.get(spec.name, 6):
                break
            seg = _segment_curve(segment)
            if any(_same_band(fd.curve.scaled(1.0 / f), seg, fd.width_px / f) for fd in found):
                continue
            if any(_same_band(t, seg, 3.0) for t in tried):  # the same line as a candidate already followed
                continue
            tried.append(seg)
            coarse = _trace_candidate(ratio, segment, spec, config, max_gap)
            if coarse is None or not _promising(coarse, spec, config, cue is not None):
                continue
            full_ratio = tissue.full()
            refined = _refine(full_ratio, coarse, spec, max_gap)
            if refined is None:
                continue
            fine, chord = refined
            score = _accept(fine, (h, w), spec, config)
            if score > 0 and cue is not None and not _not_persisting(fine, cue, strict=spec.name == "faint"):
                continue  # the same band at the same place in the neighbours: tissue, not a fold
            if score <= 0 and cue is not None:
                score = _accept_z(fine, (h, w), cue, config)
            if score <= 0 or any(_same_band(fd.curve, fine.curve, fd.width_px) for fd in found):
                continue
            mask = segment_band(full_ratio, fine.curve, fine.width, fine.band_ratio, fine.side_ratio, chord)
            found.append(FoldFinding(fine.curve, fine.width, score, fine.coverage, fine.band_ratio, mask, spec.name,
                                     fine.contrast, fine.width_spread, fine.span, fine.level_spread))
    return found


def fold_band_mask(folds: list[FoldFinding], shape: tuple[int, int], max_side: int) -> np.ndarray:
    """Union of the folds' band masks (segmented from the pixels; a fold without one is drawn from its
    curve and width), at most ``max_side`` on the long side. Called by ``detect.volume``."""
    masks = [f.mask if f.mask is not None else f.curve.band_mask(shape, f.width_px) for f in folds]
    return union_mask(masks, shape, max_side)


def _segment_curve(segment: np.ndarray) -> FoldCurve:
    """A straight FoldCurve along a Hough segment."""
    p0, p1 = segment[:2].astype(np.float64), segment[2:].astype(np.float64)
    length = max(float(np.linalg.norm(p1 - p0)), 1e-9)
    return FoldCurve(p0, (p1 - p0) / length, (0.0, 0.0, 0.0), 0.0, length)
