"""Blend weights: how much each tile's prediction counts at each of its pixels.

Weights are separable: a tile's 2-D weight map is the outer product of one profile per axis, and a
profile depends on where the tile's neighbours along that axis start and end. Three modes:

- ``crop``: every pixel comes from exactly one tile, the one whose centre region owns it; the cut
  between two neighbours lies in the middle of their overlap (an overlap/2 margin cropped from each).
- ``hann``: a raised-cosine ramp across each overlap, after a zero band of ``halo`` pixels at the
  inner edge; neighbouring ramps sum to one, and the tile centre has weight one.
- ``gaussian``: a Gaussian bump (sigma = tile / 8, as nnU-Net) times the same ramp, so the tile
  centre dominates and weights still fall continuously to zero ``halo`` pixels from an inner edge.

Sides that lie on the section border keep full weight up to the border (no neighbour can help
there). Every mode adds ``OWNER_FLOOR`` times the crop profile so each pixel has a positive total
weight whatever the geometry.
"""

from __future__ import annotations

import numpy as np

from emrepair.choices import Blend, values

BLEND_MODES = values(Blend)
OWNER_FLOOR = 1e-6
GAUSSIAN_SIGMA_FRACTION = 1.0 / 8.0


def axis_profiles(starts: list[int], tile_length: int, halo: int, mode: str) -> list[np.ndarray]:
    """One float32 weight profile of ``tile_length`` values per tile start along an axis.

    Args:
        starts: tile starts along the axis, increasing (from ``axis_starts``).
        tile_length: size of every tile along the axis.
        halo: pixels at an inner edge whose predictions lack context (zero weight in smooth modes).
        mode: one of BLEND_MODES.
    """
    if mode not in BLEND_MODES:
        raise ValueError(f"unknown blend mode {mode!r}; use one of {', '.join(BLEND_MODES)}")
    if halo < 0:
        raise ValueError(f"halo must be >= 0, got {halo}")
    profiles = []
    for i, start in enumerate(starts):
        overlap_before = starts[i - 1] + tile_length - start if i > 0 else None
        overlap_after = start + tile_length - starts[i + 1] if i + 1 < len(starts) else None
        owned = _owned_profile(tile_length, overlap_before, overlap_after)
        if mode == "crop":
            profile = owned
        else:
            profile = _edge_ramp(tile_length, overlap_before, halo)
            profile *= _edge_ramp(tile_length, overlap_after, halo)[::-1]
            if mode == "gaussian":
                profile *= _gaussian_bump(tile_length, overlap_before is None, overlap_after is None)
            profile += OWNER_FLOOR * owned
        profiles.append(profile.astype(np.float32))
    return profiles


def tile_weight(profile_y: np.ndarray, profile_x: np.ndarray) -> np.ndarray:
    """The (height, width) float32 weight map of a tile from its two axis profiles."""
    if profile_y.ndim != 1 or profile_x.ndim != 1:
        raise ValueError(f"profiles must be 1-D, got {profile_y.shape} and {profile_x.shape}")
    return np.outer(profile_y, profile_x).astype(np.float32, copy=False)


def _owned_profile(length: int, overlap_before: int | None, overlap_after: int | None) -> np.ndarray:
    """1 on the pixels this tile owns (cut in the middle of each overlap), 0 elsewhere."""
    profile = np.zeros(length, dtype=np.float64)
    low = overlap_before // 2 if overlap_before is not None else 0
    high = length - (overlap_after - overlap_after // 2) if overlap_after is not None else length
    profile[low:high] = 1.0
    return profile


def _edge_ramp(length: int, overlap: int | None, halo: int) -> np.ndarray:
    """Weights rising from the tile's start edge: 0 over the halo band, a cosine ramp, then 1.

    With no neighbour on this side (section border) the ramp is all ones. The ramp of two
    neighbours over their shared overlap sums to exactly one.
    """
    ramp = np.ones(length, dtype=np.float64)
    if overlap is None:
        return ramp
    zero_band = min(halo, overlap // 2)
    width = overlap - 2 * zero_band
    ramp[:zero_band] = 0.0
    if width > 0:
        phase = (np.arange(width) + 0.5) / width
        ramp[zero_band:zero_band + width] = 0.5 - 0.5 * np.cos(np.pi * phase)
    return ramp


def _gaussian_bump(length: int, flat_before: bool, flat_after: bool) -> np.ndarray:
    """A Gaussian centred on the tile (sigma = length / 8), held at 1 towards section borders."""
    centre = (length - 1) / 2.0
    sigma = max(length * GAUSSIAN_SIGMA_FRACTION, 1e-3)
    position = np.arange(length, dtype=np.float64)
    bump = np.exp(-0.5 * ((position - centre) / sigma) ** 2)
    if flat_before:
        bump[position <= centre] = 1.0
    if flat_after:
        bump[position >= centre] = 1.0
    return bump
