"""The coarser levels of an OME-Zarr output, made from the finished level 0 one chunk at a time.

Level k+1 halves level k in y and x (z unchanged): the mean of each 2 x 2 block for images (integers rounded
half up, the dtype kept), the maximum for labels, so that a labelled (synthetic) pixel stays visible at every
level. A block at an odd edge counts its last row/column twice. Only one output chunk and its 2 x 2 source region
are in memory at once.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import zarr


def downsample2(block: np.ndarray, labels: bool) -> np.ndarray:
    """Halve a (z, y, x) block in y and x (rounding the size up): 2 x 2 means (integers rounded half up), or
    maxima for labels."""
    _, y, x = block.shape
    if y % 2 or x % 2:
        block = np.pad(block, ((0, 0), (0, y % 2), (0, x % 2)), mode="edge")
    a, b, c, d = block[:, 0::2, 0::2], block[:, 1::2, 0::2], block[:, 0::2, 1::2], block[:, 1::2, 1::2]
    if labels:
        return np.maximum(np.maximum(a, b), np.maximum(c, d))
    if np.issubdtype(block.dtype, np.integer) and block.dtype.itemsize <= 2:
        total = a.astype(np.uint32) + b + c + d  # four uint16 values fit a uint32 exactly
        return ((total + 2) // 4).astype(block.dtype)
    total = a.astype(np.float64) + b + c + d
    if np.issubdtype(block.dtype, np.integer):
        info = np.iinfo(block.dtype)
        return np.clip(np.floor(total / 4 + 0.5), info.min, info.max).astype(block.dtype)
    return (total / 4).astype(block.dtype)


def write_level(group: zarr.Group, source: zarr.Array, name: str, shape: tuple[int, int, int],
                chunks: tuple[int, int, int], compressor: Any, labels: bool) -> zarr.Array:
    """Create (or replace) array ``name`` of ``shape`` in ``group`` and fill it, chunk by chunk, with
    ``downsample2`` of ``source`` (the level above)."""
    chunks = tuple(min(c, s) for c, s in zip(chunks, shape))
    target = group.create_array(name, shape=shape, chunks=chunks, dtype=source.dtype, compressors=compressor,
                                fill_value=0, dimension_names=["z", "y", "x"], overwrite=True)
    cz, cy, cx = chunks
    for z0, y0, x0 in itertools.product(range(0, shape[0], cz), range(0, shape[1], cy), range(0, shape[2], cx)):
        z1, y1, x1 = min(z0 + cz, shape[0]), min(y0 + cy, shape[1]), min(x0 + cx, shape[2])
        region = source[z0:z1, 2 * y0:min(2 * y1, source.shape[1]), 2 * x0:min(2 * x1, source.shape[2])]
        target[z0:z1, y0:y1, x0:x1] = downsample2(np.asarray(region), labels)
    return target


def write_pyramid(group: zarr.Group, shapes: list[tuple[int, int, int]], chunks: tuple[int, int, int],
                  compressor: Any, labels: bool) -> None:
    """Levels "1", "2", ... of ``shapes`` (``shapes[0]`` is the existing level "0") in ``group``; arrays of an
    earlier attempt under those names are replaced, and levels beyond ``shapes`` removed."""
    source = group["0"]
    for k, shape in enumerate(shapes[1:], start=1):
        source = write_level(group, source, str(k), shape, chunks, compressor, labels)  # type: ignore[arg-type]
    k = len(shapes)
    while str(k) in group:
        del group[str(k)]
        k += 1


def copy_array(source: Any, group: zarr.Group, name: str, chunks: tuple[int, int, int], compressor: Any) -> zarr.Array:
    """Copy a volume (anything with ``shape``, ``dtype`` and ``read_region``, e.g. an open emrepair volume) into a new
    (replaced) array ``name`` of ``group``, one chunk slab of whole chunks at a time."""
    shape = tuple(int(s) for s in source.shape)
    chunks = tuple(min(c, s) for c, s in zip(chunks, shape))
    target = group.create_array(name, shape=shape, chunks=chunks, dtype=source.dtype, compressors=compressor,
                                fill_value=0, dimension_names=["z", "y", "x"], overwrite=True)
    cz, cy, cx = chunks
    for z0, y0, x0 in itertools.product(range(0, shape[0], cz), range(0, shape[1], cy), range(0, shape[2], cx)):
        zs, ys, xs = slice(z0, min(z0 + cz, shape[0])), slice(y0, min(y0 + cy, shape[1])), slice(x0, min(x0 + cx, shape[2]))
        target[zs, ys, xs] = np.asarray(source.read_region(zs, ys, xs))
    return target
