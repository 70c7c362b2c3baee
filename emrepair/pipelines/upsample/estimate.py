"""What an upsample-z dry run adds to its plan: a time estimate from one timed tile, and a note when the stack is
already isotropic."""

from __future__ import annotations

import time

import numpy as np

from emrepair.io.base import Volume
from emrepair.pipelines.model_choice import _pixels_apart
from emrepair.pipelines.upsample.factor import positions
from emrepair.pipelines.upsample.upsampler import Upsampler

ISOTROPIC_PIXELS_APART = 1.25  # sections at most this many pixels apart count as isotropic already


def isotropy_note(voxel_size: tuple[float, float, float] | None, factor: int) -> str | None:
    """A warning when the input's sections are already about a pixel apart (so upsampling makes them thinner
    than its pixels); None when they are not or the voxel size is unknown."""
    apart = _pixels_apart(voxel_size)
    if apart is None or apart > ISOTROPIC_PIXELS_APART:
        return None
    z, y, x = voxel_size  # type: ignore[misc]
    return (f"the stack is already isotropic (sections {z:g} nm apart, pixels {y:g} x {x:g} nm): --factor {factor} "
            f"makes sections {z / factor:g} nm apart, thinner than its pixels")


def estimate_seconds(vol: Volume, upsampler: Upsampler, factor: int, repeats: int = 2) -> float | None:
    """Seconds the pairs of ``vol`` would take: one tile of the first pair synthesized once to warm the model up,
    then ``repeats`` times, the mean scaled by tiles per section and pairs (model loading, reading and writing
    excluded). None for a volume model (its windows are not timed here) or a stack of fewer than two sections."""
    depth, height, width = vol.shape
    if upsampler.volume is not None or depth < 2:
        return None
    engine = upsampler.engine
    tile = min(int(engine.tile_size_for((height, width))), height, width)
    scale = float(np.iinfo(vol.dtype).max) if np.issubdtype(vol.dtype, np.integer) else 1.0
    a, b = (np.asarray(vol.read_region(slice(z, z + 1), slice(0, tile), slice(0, tile))[0], np.float32) / scale
            for z in (0, 1))
    ts = positions(factor)
    a, b = np.clip(a, 0, 1), np.clip(b, 0, 1)
    engine.interpolate(a, b, ts)  # warm-up: the first pass also builds kernels and caches
    took = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        engine.interpolate(a, b, ts)
        took.append(time.perf_counter() - started)
    return float(np.mean(took)) * upsampler.tiles_per_section((height, width)) * (depth - 1)
