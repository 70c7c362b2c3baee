"""Synthetic missing and partly lost sections: what a lost, blank, overexposed, noisy or torn section looks like,
and a section that lost only a region (torn from a border, a hole, a dropout stripe)."""

from __future__ import annotations

import numpy as np

from emrepair.simulate.intensity import cast_like, intensity_range

MISSING_KINDS = ("blank", "constant", "saturated", "noise", "tear")
PARTIAL_FILLS = ("black", "white", "constant", "noise")
PARTIAL_SHAPES = ("border", "hole", "stripe")


def simulate_missing(section: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Return a copy of ``section`` (same dtype and shape) turned into a missing section of ``kind``.

    Kinds: ``blank`` all black (0, or the finite minimum for float data with negative values); ``constant`` one grey
    value (the section's median); ``saturated`` all white (dtype max for integers, finite maximum for
    floats); ``noise`` independent Gaussian noise with the section's mean and standard deviation;
    ``tear`` between 55 % and 85 % of the section replaced by black beyond an irregular edge.
    """
    if section.ndim != 2:
        raise ValueError(f"expected a 2-D section, got shape {section.shape}")
    if kind not in MISSING_KINDS:
        raise ValueError(f"unknown missing kind {kind!r}; expected one of {MISSING_KINDS}")
    black, white = intensity_range(section)
    finite = section[np.isfinite(section)] if section.dtype.kind == "f" else section
    if kind == "blank":
        return np.full_like(section, black)
    if kind == "saturated":
        return np.full_like(section, white)
    if kind == "constant":
        level = float(np.median(finite)) if finite.size else 0.5 * (black + white)
        return cast_like(np.full(section.shape, level), section)
    if kind == "noise":
        mean = float(finite.mean()) if finite.size else 0.5 * (black + white)
        std = max(float(finite.std()) if finite.size else 0.0, 0.1 * (white - black))
        noise = rng.normal(mean, std, size=section.shape)
        return cast_like(np.clip(noise, black, white), section)
    out = section.copy()
    out[tear_mask(section.shape, rng)] = cast_like(np.array(black), section)
    return out


def tear_mask(shape: tuple[int, int], rng: np.random.Generator, lost: tuple[float, float] = (0.55, 0.85)) -> np.ndarray:
    """A boolean mask covering a random fraction ``lost`` of the image beyond a wavy, jagged edge."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    across = (xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle)
    along = -(xx - w / 2) * np.sin(angle) + (yy - h / 2) * np.cos(angle)
    size = float(max(h, w))
    edge = np.zeros_like(across)
    for _ in range(4):  # a few low-frequency waves make the edge irregular, not straight
        freq = rng.uniform(0.5, 4.0) * 2 * np.pi / size
        edge += rng.uniform(0.01, 0.06) * size * np.sin(freq * along + rng.uniform(0, 2 * np.pi))
    edge += rng.normal(0, 0.004 * size, size=edge.shape)  # small jaggedness
    score = across + edge
    threshold = np.quantile(score, 1.0 - rng.uniform(*lost))
    return score > threshold


def partial_mask(shape: tuple[int, int], where: str, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A bool mask of about ``fraction`` of the section: ``border`` beyond a wavy torn edge, ``hole`` an irregular
    blob inside, ``stripe`` a band of full rows or columns."""
    h, w = shape
    if where == "border":
        return tear_mask(shape, rng, (fraction, fraction))
    if where == "hole":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        angle = np.arctan2(yy - cy, xx - cx)
        wobble = 1.0 + sum(rng.uniform(0.0, 0.15) * np.sin(k * angle + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
        radius = np.hypot((yy - cy) * rng.uniform(0.7, 1.3), xx - cx) / wobble
        return radius <= np.quantile(radius, fraction)
    if where == "stripe":
        vertical = bool(rng.integers(2))
        side = w if vertical else h
        width = max(1, int(round(fraction * side)))
        start = int(rng.integers(0, side - width + 1))
        mask = np.zeros(shape, bool)
        if vertical:
            mask[:, start:start + width] = True
        else:
            mask[start:start + width] = True
        return mask
    raise ValueError(f"unknown region shape {where!r}; expected one of {PARTIAL_SHAPES}")


def simulate_partial(section: np.ndarray, fill: str, where: str, fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``section`` that lost about ``fraction`` of its area, and the bool mask of the lost pixels.

    ``fill``: ``black``, ``white`` (as for blank and saturated sections), ``constant`` (the median) or ``noise``
    (independent Gaussian noise with the section's mean and standard deviation); ``where``: see ``partial_mask``.
    """
    if section.ndim != 2:
        raise ValueError(f"expected a 2-D section, got shape {section.shape}")
    if fill not in PARTIAL_FILLS:
        raise ValueError(f"unknown fill {fill!r}; expected one of {PARTIAL_FILLS}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the lost fraction must be in (0, 1), not {fraction}")
    mask = partial_mask(section.shape, where, fraction, rng)
    kind = {"black": "blank", "white": "saturated", "constant": "constant", "noise": "noise"}[fill]
    lost = simulate_missing(section, kind, rng)
    out = section.copy()
    out[mask] = lost[mask]
    return out, mask
