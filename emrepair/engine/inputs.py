"""Checking the sections and positions handed to the engine."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from emrepair.errors import InputError

RANGE_TOLERANCE = 1e-4


def check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return a and b as float32 (H, W) arrays in [0, 1].

    Raises:
        ValueError: not numpy arrays, not 2-D, shapes differ, empty, or values outside [0, 1]
            (beyond a 1e-4 tolerance, which is clipped).
        InputError: NaN or infinite values (bad data rather than a caller's mistake).
    """
    arrays = []
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, np.ndarray):
            raise ValueError(f"{name} must be a numpy array, got {type(x).__name__}")
        if x.ndim != 2:
            raise ValueError(f"{name} must be a 2-D (height, width) section, got shape {x.shape}")
        if x.size == 0:
            raise ValueError(f"{name} is empty (shape {x.shape})")
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
        x32 = np.asarray(x, dtype=np.float32)
        if not np.isfinite(x32).all():
            raise InputError(f"section {name} contains NaN or infinite values")
        low, high = float(x32.min()), float(x32.max())
        if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
            raise ValueError(f"{name} must hold values in [0, 1], got [{low:.4g}, {high:.4g}]")
        arrays.append(np.clip(x32, 0.0, 1.0))
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    return arrays[0], arrays[1]


def check_positions(ts: Sequence[float]) -> list[float]:
    """Return ts as a list of floats, each strictly between 0 and 1.

    Raises:
        ValueError: ts is not a sequence of numbers in (0, 1).
    """
    if isinstance(ts, (str, bytes)) or not hasattr(ts, "__iter__"):
        raise ValueError(f"ts must be a sequence of positions in (0, 1), got {ts!r}")
    values = []
    for t in ts:
        try:
            value = float(t)
        except (TypeError, ValueError):
            raise ValueError(f"position {t!r} is not a number") from None
        if not 0.0 < value < 1.0:
            raise ValueError(f"positions must lie strictly between 0 and 1, got {value}")
        values.append(value)
    return values
