"""Intensity conventions shared by the simulators: what "black" and "white" mean for a section."""

from __future__ import annotations

import numpy as np


def intensity_range(section: np.ndarray) -> tuple[float, float]:
    """Return (black, white) for a section: the dtype limits for integers; for floats 0 (or the finite
    minimum when the section has negative values) and the finite maximum.

    This matches the detector, which measures darkness above 0 for non-negative data. A float section with
    no finite pixels gives (0, 1).
    """
    if np.issubdtype(section.dtype, np.integer):
        info = np.iinfo(section.dtype)
        return float(info.min), float(info.max)
    finite = section[np.isfinite(section)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = min(0.0, float(finite.min())), float(finite.max())
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def cast_like(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Round and clip float ``values`` into ``like``'s dtype (floats are only cast)."""
    if np.issubdtype(like.dtype, np.integer):
        info = np.iinfo(like.dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(like.dtype)
    return values.astype(like.dtype)


def finite_source(section: np.ndarray, black: float) -> tuple[np.ndarray, np.ndarray | None]:
    """``section`` with non-finite pixels (NaN/inf in float stacks) set to ``black``, so warps can sample it, and
    the mask of those pixels (None when there are none)."""
    if section.dtype.kind != "f":
        return section, None
    nonfinite = ~np.isfinite(section)
    if not nonfinite.any():
        return section, None
    return np.where(nonfinite, black, section).astype(section.dtype), nonfinite


def restore_nonfinite(image: np.ndarray, section: np.ndarray, nonfinite: np.ndarray | None,
                      band: np.ndarray) -> None:
    """Put ``section``'s non-finite pixels back into ``image`` outside the fold ``band`` (in place)."""
    if nonfinite is not None:
        image[nonfinite & ~band] = section[nonfinite & ~band]
