"""Synthetic missing sections: what a lost, blank, overexposed, noisy or torn section looks like."""

from __future__ import annotations

import numpy as np

from emrepair.simulate.intensity import cast_like, intensity_range

MISSING_KINDS = ("blank", "constant", "saturated", "noise", "tear")


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
