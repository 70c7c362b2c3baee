"""Small volumes and comparisons shared by the resume, parts, distributed and in-place tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from emrepair.io import open_volume


def textured_stack(depth: int = 12, size: int = 48, dtype: str = "uint8", seed: int = 0) -> np.ndarray:
    """A stack of smooth random sections (values well inside the dtype's range)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(depth, size // 4, size // 4))
    up = np.kron(base, np.ones((1, 4, 4)))
    unit = (up - up.min()) / (up.max() - up.min())
    if dtype == "uint8":
        return np.round(20 + 200 * unit).astype(np.uint8)
    if dtype == "uint16":
        return np.round(500 + 3000 * unit).astype(np.uint16)
    return unit.astype(np.float32)


def write_zarr(path: Path, data: np.ndarray, chunks: tuple[int, int, int] = (2, 32, 32)) -> str:
    """A plain Zarr v3 array store holding ``data``."""
    arr = zarr.open_array(str(path), mode="w", shape=data.shape, chunks=chunks, dtype=data.dtype)
    arr[:] = data
    return str(path)


def read_all(path: Path | str) -> np.ndarray:
    """Every section of a volume, stacked."""
    with open_volume(path) as vol:
        return np.stack([vol.read_section(z) for z in range(vol.shape[0])])
