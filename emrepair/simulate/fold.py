"""Synthetic support-film folds: a dark band across the section with the tissue beside it pulled in.

Follows the public simulators of Huang et al. (ECCVW 2020) and Deng et al. (TMI 2022): a line between
points on two different borders, a dark band ``line_width`` wide along it, tissue on each side displaced
toward the band with a slope ``dis_k`` up to ``fold_width`` from the line, and optionally one box of
regional contrast change. Optional slight curvature bends the band into a parabola over its chord.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from emrepair.simulate.intensity import cast_like, finite_source, intensity_range, restore_nonfinite


@dataclass(frozen=True)
class FoldParams:
    """Ranges the fold simulator samples from (pixels are full-resolution pixels).

    Attributes:
        line_width: inclusive range of the dark band's width (ECCVW: 5..50; TMI: 5..20).
        fold_width_max: largest reach of the displacement from the centre line; the reach is drawn from
            line_width+1 .. max(line_width+1, fold_width_max) (ECCVW: 80).
        dis_k: range of the displacement slope; displacement = dis_k * (reach - distance) inside the reach.
        darkness: range of how much of the tissue signal the band removes (1.0 = pure black); the
            remainder keeps a faint copy of the texture, as in real, dark-grey folds.
        min_length_frac: the band's chord is at least this fraction of the image's shorter side.
        corner_margin: endpoints stay this fraction of the border length away from corners.
        contrast_box_prob: chance of one box of regional contrast change (TMI).
        contrast_box_size: range of the box's side in pixels (TMI: 50..200).
        contrast_factor: range of the factor applied to the box's intensities (TMI: 0.4..1.0).
        curvature_prob: chance that the band is slightly curved.
        max_sagitta: largest bow of a curved band as a fraction of its chord length.
        pull_decay: None (the default) for the linear pull above; else the range of an e-folding distance
            (px): the displacement at the band's edge, dis_k * (reach - line_width / 2), then decays as
            exp(-distance beyond the edge / decay), with no cut-off at the reach (a wide, slowly fading pull).
            Drawn last, so None draws exactly the random numbers it always did.
    """

    line_width: tuple[int, int] = (5, 50)
    fold_width_max: int = 80
    dis_k: tuple[float, float] = (1e-5, 0.1)
    darkness: tuple[float, float] = (0.85, 1.0)
    min_length_frac: float = 0.5
    corner_margin: float = 0.1
    contrast_box_prob: float = 0.5
    contrast_box_size: tuple[int, int] = (50, 200)
    contrast_factor: tuple[float, float] = (0.4, 1.0)
    curvature_prob: float = 0.3
    max_sagitta: float = 0.04
    pull_decay: tuple[float, float] | None = None


@dataclass
class FoldResult:
    """A simulated fold and its ground truth.

    Attributes:
        image: the folded section, same dtype and shape as the input.
        band_mask: (H, W) bool, True on the dark band.
        displacement: (2, H, W) float32 (dy, dx): ``image(y, x)`` samples the input at
            ``(y + dy, x + dx)`` before darkening; zero beyond the reach.
        line: (x0, y0, x1, y1) endpoints of the band's chord, on two different image borders.
        width_px: the band's width in pixels.
    """

    image: np.ndarray
    band_mask: np.ndarray
    displacement: np.ndarray
    line: tuple[float, float, float, float]
    width_px: int


def _border_point(side: int, h: int, w: int, margin: float, rng: np.random.Generator) -> np.ndarray:
    """A random (x, y) on border ``side`` (0 top, 1 right, 2 bottom, 3 left), away from the corners."""
    length = w if side in (0, 2) else h
    t = rng.uniform(margin * length, (1 - margin) * length)
    if side == 0:
        return np.array([t, 0.0])
    if side == 1:
        return np.array([w - 1.0, t])
    if side == 2:
        return np.array([t, h - 1.0])
    return np.array([0.0, t])


def _sample_chord(h: int, w: int, params: FoldParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two endpoints on different borders, at least ``min_length_frac`` of the shorter side apart."""
    min_len = params.min_length_frac * min(h, w)
    for _ in range(1000):
        s0, s1 = rng.choice(4, size=2, replace=False)
        p0 = _border_point(int(s0), h, w, params.corner_margin, rng)
        p1 = _border_point(int(s1), h, w, params.corner_margin, rng)
        if np.linalg.norm(p1 - p0) >= min_len:
            return p0, p1
    raise ValueError(f"cannot place a fold of length {min_len:.0f} px in a {h}x{w} section")


def simulate_fold(section: np.ndarray, rng: np.random.Generator, params: FoldParams | None = None) -> FoldResult:
    """Fold ``section`` (uint8, uint16 or float32, shape (H, W)) and return the result with its ground truth."""
    if section.ndim != 2:
        raise ValueError(f"expected a 2-D section, got shape {section.shape}")
    params = params or FoldParams()
    h, w = section.shape
    black, _ = intensity_range(section)
    p0, p1 = _sample_chord(h, w, params, rng)
    width = int(rng.integers(params.line_width[0], params.line_width[1] + 1))
    reach = float(rng.integers(width + 1, max(width + 1, params.fold_width_max) + 1))
    dis_k = float(rng.uniform(*params.dis_k))
    darkness = float(rng.uniform(*params.darkness))
    chord = p1 - p0
    length = float(np.linalg.norm(chord))
    tangent = chord / length
    normal = np.array([-tangent[1], tangent[0]])
    sagitta = rng.uniform(-1, 1) * params.max_sagitta * length if rng.random() < params.curvature_prob else 0.0
    decay = float(rng.uniform(*params.pull_decay)) if params.pull_decay is not None else None

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rel_x, rel_y = xx - p0[0], yy - p0[1]
    along = np.clip(rel_x * tangent[0] + rel_y * tangent[1], 0.0, length) / length
    across = rel_x * normal[0] + rel_y * normal[1]
    # a parabolic bow over the chord; for slight bows the offset coordinate is close to a true distance
    offset = np.float32(4 * sagitta) * along * (1 - along)
    signed = across - offset
    slope = np.float32(4 * sagitta / length) * (1 - 2 * along)  # d(offset)/d(along px)
    dir_x = normal[0] - slope * tangent[0]
    dir_y = normal[1] - slope * tangent[1]
    norm = np.sqrt(dir_x**2 + dir_y**2)
    side = np.where(signed >= 0, 1.0, -1.0).astype(np.float32)
    distance = np.abs(signed)
    if decay is None:
        magnitude = dis_k * np.clip(reach - np.maximum(distance, width / 2), 0.0, None)
    else:
        beyond = np.maximum(distance, width / 2) - width / 2
        magnitude = dis_k * max(reach - width / 2, 0.0) * np.exp(-beyond / np.float32(decay))
    dx = (side * magnitude * dir_x / norm).astype(np.float32)
    dy = (side * magnitude * dir_y / norm).astype(np.float32)

    source, nonfinite = finite_source(section, black)
    warped = cv2.remap(source, xx + dx, yy + dy, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    values = warped.astype(np.float32)

    if rng.random() < params.contrast_box_prob:
        side_len = rng.integers(params.contrast_box_size[0], params.contrast_box_size[1] + 1, size=2)
        bh, bw = min(int(side_len[0]), h), min(int(side_len[1]), w)
        y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        factor = np.float32(rng.uniform(*params.contrast_factor))
        box = values[y0:y0 + bh, x0:x0 + bw]
        values[y0:y0 + bh, x0:x0 + bw] = black + (box - black) * factor

    band = distance < width / 2
    values[band] = black + (values[band] - black) * np.float32(1 - darkness)
    image = cast_like(values, section)
    restore_nonfinite(image, section, nonfinite, band)
    return FoldResult(
        image=image,
        band_mask=band,
        displacement=np.stack([dy, dx]).astype(np.float32),
        line=(float(p0[0]), float(p0[1]), float(p1[0]), float(p1[1])),
        width_px=width,
    )
