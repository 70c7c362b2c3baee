"""Fold family B: an independent support-film fold simulator, for benchmarks and tests only.

Written from what real folds in serial-section TEM look like (issue #18; Huang et al.'s analysis of fold
slope and amplitude), with distributions and an appearance disjoint from family A (``simulate.fold``, the
one sff trains on): thin near-black lines 2-4.5 px wide with knots, wide bands with ragged edges and a
grainy film texture, faint bands (30-60 % darker than the tissue), bands broken into pieces or partly
washed out, meandering rather than parabolic centre lines, folds along and at the section border, two
folds in one section, an exponentially decaying pull of the tissue toward the band (family A: linear),
a rectangle of stretched contrast beside the fold (family A: a dimmed box anywhere) and JPEG compression.
Nothing in the detector or in sff's training data is tuned on this family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from emrepair.simulate.fold import FoldResult
from emrepair.simulate.intensity import cast_like, finite_source, intensity_range, restore_nonfinite

FOLD_B_KINDS = ("thin", "wide", "faint")


@dataclass(frozen=True)
class FoldBParams:
    """Distributions of family B (full-resolution pixels; ranges are uniform unless said otherwise).

    kind_probs: chances of a thin line, a wide band and a faint band (``FOLD_B_KINDS``).
    thin_width / wide_width (log-uniform) / faint_width: the band's median width per kind.
    dark_darkness / faint_darkness: share of the tissue signal the band removes.
    two_folds_prob: chance of a second, separate fold. edge_prob: chance that a fold runs along a border.
    knot_prob: chance of a dark knot on a thin line. broken_prob: chance of 1-3 gaps (4-12 % of the length).
    washout_prob: chance that a dark band fades to as little as ``washout_min`` of its darkness somewhere.
    meander: largest sideways wander of the centre line, as a fraction of its length.
    ragged: largest relative roughness of a wide band's edges.
    pull: displacement at the band's edge as a fraction of its width (at most ``pull_max_px``);
    pull_decay: e-folding distance (px) of the pull away from the band.
    rect_prob / rect_contrast: chance and factor of a rectangle of stretched or flattened contrast beside
        the fold. jpeg_prob / jpeg_quality: chance and quality of JPEG compression (uint8 sections only).
    """

    kind_probs: tuple[float, float, float] = (0.4, 0.35, 0.25)
    thin_width: tuple[float, float] = (2.0, 4.5)
    wide_width: tuple[float, float] = (10.0, 80.0)
    faint_width: tuple[float, float] = (6.0, 40.0)
    dark_darkness: tuple[float, float] = (0.88, 0.98)
    faint_darkness: tuple[float, float] = (0.3, 0.6)
    two_folds_prob: float = 0.25
    edge_prob: float = 0.2
    knot_prob: float = 0.35
    broken_prob: float = 0.3
    washout_prob: float = 0.3
    washout_min: float = 0.5
    meander: float = 0.025
    ragged: float = 0.3
    pull: tuple[float, float] = (0.15, 0.5)
    pull_max_px: float = 20.0
    pull_decay: tuple[float, float] = (8.0, 50.0)
    rect_prob: float = 0.25
    rect_contrast: tuple[float, float] = (0.6, 1.4)
    jpeg_prob: float = 0.2
    jpeg_quality: tuple[int, int] = (55, 90)


@dataclass
class FoldBInfo:
    """One fold of a family-B section: its kind, median width, chord (x0, y0, x1, y1) and features."""

    kind: str
    width_px: float
    chord: tuple[float, float, float, float]
    darkness: float
    features: list[str] = field(default_factory=list)


@dataclass
class FoldBResult(FoldResult):
    """A family-B fold (``FoldResult`` fields; ``line``/``width_px`` of the first fold) plus every fold's
    description and ``pulled_mask``, the tissue outside the band moved by at least half a pixel."""

    folds: list[FoldBInfo] = field(default_factory=list)
    pulled_mask: np.ndarray | None = None


def _smooth_noise(rng: np.random.Generator, lo: float, hi: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Knots of a random function in [-1, 1] over [lo, hi] with ``spacing`` between knots."""
    knots = np.arange(lo - spacing, hi + 2 * spacing, spacing)
    return knots, rng.uniform(-1.0, 1.0, knots.size)


def _chord(h: int, w: int, edge: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Chord origin (x, y) and unit tangent: border to border, or along a border when ``edge``."""
    if edge:
        side = int(rng.integers(4))
        tilt = np.deg2rad(rng.uniform(-3.0, 3.0))
        along_x = side in (0, 2)
        depth = rng.uniform(-0.02, 0.12) * (h if along_x else w)
        if along_x:
            y = depth if side == 0 else h - 1 - depth
            return np.array([0.0, y]), np.array([np.cos(tilt), np.sin(tilt)])
        x = depth if side == 3 else w - 1 - depth
        return np.array([x, 0.0]), np.array([np.sin(tilt), np.cos(tilt)])
    for _ in range(1000):
        s0, s1 = rng.choice(4, size=2, replace=False)
        pts = []
        for s in (s0, s1):
            t = rng.uniform(0.05, 0.95) * (w if s in (0, 2) else h)
            pts.append({0: (t, 0.0), 1: (w - 1.0, t), 2: (t, h - 1.0), 3: (0.0, t)}[int(s)])
        p0, p1 = np.array(pts[0]), np.array(pts[1])
        if np.linalg.norm(p1 - p0) >= 0.6 * min(h, w):
            return p0, (p1 - p0) / np.linalg.norm(p1 - p0)
    raise ValueError(f"cannot place a fold in a {h}x{w} section")


def _one_fold(h: int, w: int, params: FoldBParams, rng: np.random.Generator):
    """Sample one fold; return its darkening weight (H, W), pull field (2, H, W), band mask and info."""
    kind = str(rng.choice(FOLD_B_KINDS, p=np.asarray(params.kind_probs) / sum(params.kind_probs)))
    if kind == "thin":
        width = rng.uniform(*params.thin_width)
    elif kind == "wide":
        width = float(np.exp(rng.uniform(*np.log(params.wide_width))))
    else:
        width = rng.uniform(*params.faint_width)
    darkness = rng.uniform(*(params.faint_darkness if kind == "faint" else params.dark_darkness))
    edge = rng.random() < params.edge_prob
    origin, tangent = _chord(h, w, edge, rng)
    normal = np.array([-tangent[1], tangent[0]])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rel_x, rel_y = xx - np.float32(origin[0]), yy - np.float32(origin[1])
    along = rel_x * np.float32(tangent[0]) + rel_y * np.float32(tangent[1])
    across = rel_x * np.float32(normal[0]) + rel_y * np.float32(normal[1])
    lo, hi = float(along.min()), float(along.max())
    length = hi - lo
    features = ["edge"] if edge else []
    # meander: two sinusoids of random phase, periods of a third to the whole length
    amp = rng.uniform(0.0, params.meander) * length
    periods = rng.uniform(length / 3, 1.5 * length, 2)
    phases = rng.uniform(0, 2 * np.pi, 2)
    split = rng.uniform(0.3, 0.7)
    centre = amp * (split * np.sin(2 * np.pi * along / periods[0] + phases[0])
                    + (1 - split) * np.sin(2 * np.pi * along / periods[1] + phases[1]))
    slope = amp * (split * 2 * np.pi / periods[0] * np.cos(2 * np.pi * along / periods[0] + phases[0])
                   + (1 - split) * 2 * np.pi / periods[1] * np.cos(2 * np.pi * along / periods[1] + phases[1]))
    signed = (across - centre.astype(np.float32)) / np.sqrt(1 + slope * slope).astype(np.float32)
    # width profile: slow variation, plus independent ragged edges for wide bands
    knots, vals = _smooth_noise(rng, lo, hi, max(40.0, length / 6))
    half = 0.5 * width * np.exp(0.2 * np.interp(along, knots, vals)).astype(np.float32)
    rough = params.ragged * rng.uniform(0.3, 1.0) if kind == "wide" else 0.08
    sides = []
    for _ in range(2):
        k, v = _smooth_noise(rng, lo, hi, rng.uniform(3.0, 10.0))
        sides.append(half * (1 + rough * np.interp(along, k, v)).astype(np.float32))
    half = np.maximum(np.where(signed >= 0, sides[0], sides[1]), 0.8)
    soft = rng.uniform(0.4, 1.2)
    weight = np.clip((half - np.abs(signed)) / soft + 0.5, 0.0, 1.0)
    strength = np.full(along.shape, darkness, np.float32)
    if kind != "faint" and rng.random() < params.washout_prob:
        centre_s, spread = rng.uniform(lo, hi), rng.uniform(0.1, 0.3) * length
        fade = (1 - params.washout_min) * rng.uniform(0.5, 1.0)
        strength *= (1 - fade * np.exp(-0.5 * ((along - centre_s) / spread) ** 2)).astype(np.float32)
        features.append("washed-out")
    if rng.random() < params.broken_prob:
        for _ in range(int(rng.integers(1, 4))):
            g0, glen = rng.uniform(lo + 0.1 * length, hi - 0.2 * length), rng.uniform(0.04, 0.12) * length
            ramp = np.clip(np.minimum(along - g0, g0 + glen - along) / 3.0, 0.0, 1.0)
            strength *= (1 - ramp).astype(np.float32)
        features.append("broken")
    if kind == "thin" and rng.random() < params.knot_prob:
        for _ in range(int(rng.integers(1, 3))):
            s_k = rng.uniform(lo + 0.1 * length, hi - 0.1 * length)
            radii = max(4.0, width * rng.uniform(2.0, 5.0)) * rng.uniform(0.6, 1.0, 2)
            d_along, d_across = (along - s_k) / radii[0], signed / radii[1]
            blob = np.clip((1 - np.sqrt(d_along ** 2 + d_across ** 2)) * radii.min() / soft + 0.5, 0, 1)
            weight = np.maximum(weight, blob.astype(np.float32))
        features.append("knot")
    band = (weight >= 0.5) & (strength >= 0.5 * darkness)
    pull_edge = min(params.pull_max_px, rng.uniform(*params.pull) * width + 0.5)
    decay = rng.uniform(*params.pull_decay)
    magnitude = pull_edge * np.exp(-np.maximum(np.abs(signed) - half, 0.0) / decay)
    magnitude[magnitude < 0.05] = 0.0
    side = np.where(signed >= 0, 1.0, -1.0).astype(np.float32)
    pull = np.stack([side * magnitude * np.float32(normal[1]), side * magnitude * np.float32(normal[0])])
    end = origin + tangent * hi
    start = origin + tangent * lo
    info = FoldBInfo(kind, round(float(width), 2), tuple(float(v) for v in (*start, *end)),
                     round(float(darkness), 3), features)
    return (weight * strength).astype(np.float32), pull.astype(np.float32), band, info


def simulate_fold_b(section: np.ndarray, rng: np.random.Generator, params: FoldBParams | None = None) -> FoldBResult:
    """Fold ``section`` (uint8, uint16 or float32, (H, W)) with one or two family-B folds and their truth."""
    if section.ndim != 2:
        raise ValueError(f"expected a 2-D section, got shape {section.shape}")
    params = params or FoldBParams()
    h, w = section.shape
    if min(h, w) < 16:
        raise ValueError(f"section {h}x{w} is too small to fold")
    black, white = intensity_range(section)
    folds = [_one_fold(h, w, params, rng)]
    if rng.random() < params.two_folds_prob:
        for _ in range(20):
            second = _one_fold(h, w, params, rng)
            near = cv2.dilate(folds[0][2].astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
            if not (near & second[2]).any():
                folds.append(second)
                break
    dark = np.zeros((h, w), np.float32)
    displacement = np.zeros((2, h, w), np.float32)
    band = np.zeros((h, w), bool)
    for weight, pull, mask, _ in folds:
        dark = 1 - (1 - dark) * (1 - weight)
        displacement += pull
        band |= mask
    source, nonfinite = finite_source(section, black)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    values = cv2.remap(source.astype(np.float32), xx + displacement[1], yy + displacement[0],
                       interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < params.rect_prob:
        values = _contrast_rectangle(values, folds[0][2], black, params, rng)
    # grainy film texture in the band, then the darkening itself
    grain = cv2.GaussianBlur(rng.normal(0.0, 1.0, (h, w)).astype(np.float32), (0, 0), rng.uniform(0.7, 1.5))
    grain *= np.float32(rng.uniform(0.02, 0.06) * (white - black) / max(float(grain.std()), 1e-6))
    values = black + (values - black) * (1 - dark) + grain * dark
    values = np.clip(values, black, white)
    image = cast_like(values, section)
    if section.dtype == np.uint8 and rng.random() < params.jpeg_prob:
        quality = int(rng.integers(params.jpeg_quality[0], params.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            image = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    restore_nonfinite(image, section, nonfinite, band)
    pulled = (np.hypot(displacement[0], displacement[1]) >= 0.5) & ~band
    first = folds[0][3]
    return FoldBResult(image=image, band_mask=band, displacement=displacement, line=first.chord,
                       width_px=first.width_px, folds=[f[3] for f in folds], pulled_mask=pulled)


def _contrast_rectangle(values: np.ndarray, band: np.ndarray, black: float, params: FoldBParams,
                        rng: np.random.Generator) -> np.ndarray:
    """Stretch or flatten the contrast of an axis-aligned rectangle that touches the fold's band."""
    h, w = values.shape
    ys, xs = np.nonzero(band)
    if ys.size == 0:
        return values
    i = int(rng.integers(ys.size))
    bh, bw = int(rng.uniform(0.15, 0.4) * h), int(rng.uniform(0.15, 0.4) * w)
    y0 = int(np.clip(ys[i] - rng.uniform(0, 1) * bh, 0, h - bh))
    x0 = int(np.clip(xs[i] - rng.uniform(0, 1) * bw, 0, w - bw))
    factor = rng.uniform(*params.rect_contrast)
    if abs(factor - 1) < 0.15:
        factor = 1 + np.copysign(0.15, factor - 1)
    box = values[y0:y0 + bh, x0:x0 + bw]
    mean = float(box.mean())
    values = values.copy()
    values[y0:y0 + bh, x0:x0 + bw] = np.maximum(black, mean + (box - mean) * np.float32(factor))
    return values
