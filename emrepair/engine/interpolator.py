"""Tiled, batched, blended interpolation of one section pair on a device (numpy in, numpy out)."""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from emrepair.callbacks import ProgressCallback
from emrepair.engine.blending import axis_profiles, tile_weight
from emrepair.engine.config import EngineConfig
from emrepair.engine.device import resolve_device, resolve_precision
from emrepair.engine.inputs import check_pair, check_positions
from emrepair.engine.memory import (CPU_DEFAULT_TILE, GPU_MEMORY_FRACTION, MIN_AUTO_TILE, bytes_per_pixel,
                                    free_cuda_bytes, round_down, round_up, tile_size_for_budget)
from emrepair.engine.tiling import Tile, auto_overlap, axis_starts, plan_tiles
from emrepair.errors import UsageError



class TiledInterpolator:
    """Runs an interpolation model over sections of any size, tile by tile.

    The model (``model(a, b, t)`` with a, b (B, 1, H, W) in [0, 1] and t (B,); attributes ``halo``
    and ``size_multiple``) is moved to the device once and put in eval mode. Each call to
    :meth:`interpolate` cuts the section into overlapping tiles, pads each by reflection to the
    model's size multiple, runs them ``batch_size`` (tile, t) pairs at a time, and blends the
    predictions into float32 accumulators normalised by the accumulated weights.
    """

    def __init__(self, model: nn.Module, config: EngineConfig | None = None) -> None:
        self.config = config if config is not None else EngineConfig()
        self.halo = _model_int(model, "halo", minimum=0)
        self.size_multiple = _model_int(model, "size_multiple", minimum=1)
        self.device = resolve_device(self.config.device)
        self.autocast_dtype = resolve_precision(self.config.precision, self.device)
        self.model = model.to(self.device).eval()
        self._bytes_per_pixel: float | None = None
        self._tile_cap: int | None = None  # lowered after a CUDA out-of-memory error
        self._warned_overlap = False
        if self.config.tile_size is not None and self.config.tile_size <= 2 * self.halo:
            raise UsageError(f"tile size {self.config.tile_size} leaves no valid pixels for a model with a "
                             f"halo of {self.halo}; use a tile size above {2 * self.halo}")

    def tile_size_for(self, shape: tuple[int, int]) -> int:
        """The tile side used for a section of ``shape`` (height, width).

        The configured tile size (rounded up to the model's size multiple) if any; otherwise, on CUDA, the largest that fits the free memory
        (see ``emrepair.engine.memory``), on the CPU 512; never more than the padded section.
        """
        height, width = _check_shape(shape)
        if self.config.tile_size is not None:
            return round_up(self.config.tile_size, self.size_multiple)
        if self.device.type == "cuda":
            budget = GPU_MEMORY_FRACTION * free_cuda_bytes(self.device)
            tile = tile_size_for_budget(budget, self.bytes_per_pixel(), self.config.batch_size,
                                        self.size_multiple, min_tile=self._min_auto_tile())
        else:
            tile = round_up(CPU_DEFAULT_TILE, self.size_multiple)
        if self._tile_cap is not None:
            tile = min(tile, self._tile_cap)
        return min(tile, round_up(max(height, width), self.size_multiple))

    def overlap_for(self, tile_size: int) -> int:
        """The overlap used with ``tile_size``: the configured one, or ``auto_overlap``.

        A configured overlap below twice the halo is allowed but warns: pixels near tile edges
        then come from predictions that lacked context, and seams may show.
        """
        if self.config.overlap is None:
            return auto_overlap(tile_size, self.halo)
        if self.config.overlap < 2 * self.halo and not self._warned_overlap:
            self._warned_overlap = True
            warnings.warn(f"overlap {self.config.overlap} is less than twice the model halo ({self.halo}); "
                          "tile seams may show", UserWarning, stacklevel=2)
        if self.config.overlap >= tile_size:
            raise UsageError(f"overlap {self.config.overlap} must be smaller than the tile size {tile_size}")
        return self.config.overlap

    def plan(self, shape: tuple[int, int]) -> list[Tile]:
        """The tiles a section of ``shape`` will be cut into (for dry-run plans).

        Coordinates are in the section padded to the model's size multiple, as the engine runs it.
        """
        height, width = _check_shape(shape)
        tile = self.tile_size_for((height, width))
        padded = (round_up(height, self.size_multiple), round_up(width, self.size_multiple))
        return plan_tiles(padded, tile, self.overlap_for(tile))

    def bytes_per_pixel(self) -> float:
        """The model's forward memory per pixel on this engine's device (measured once, cached)."""
        if self._bytes_per_pixel is None:
            self._bytes_per_pixel = bytes_per_pixel(self.model, self.autocast_dtype)
        return self._bytes_per_pixel

    def interpolate(self, a: np.ndarray, b: np.ndarray, ts: Sequence[float],
                    progress: ProgressCallback | None = None) -> list[np.ndarray]:
        """Synthesize the sections at each position in ``ts`` between ``a`` (t=0) and ``b`` (t=1).

        Args:
            a, b: (H, W) sections with values in [0, 1], same shape (converted to float32).
            ts: positions strictly between 0 and 1.
            progress: called as progress(done_tiles, total_tiles) at the start and after each batch;
                after an out-of-memory retry with smaller tiles it starts again from 0.

        Returns:
            One float32 (H, W) array in [0, 1] per position, in the order of ``ts``.

        Raises:
            ValueError: bad shapes, values outside [0, 1] or positions outside (0, 1).
            InputError: NaN or infinite values in a or b.
            UsageError: CUDA ran out of memory at the smallest tile size or with a fixed tile size.
        """
        a32, b32 = check_pair(a, b)
        positions = check_positions(ts)
        if not positions:
            return []
        while True:
            tile = self.tile_size_for(a32.shape)
            try:
                return self._run_section(a32, b32, positions, tile, self.overlap_for(tile), progress)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                smaller = round_down(tile // 2, self.size_multiple)
                if self.config.tile_size is not None or smaller < self._min_auto_tile():
                    raise UsageError(f"out of GPU memory with tile size {tile} and batch size "
                                     f"{self.config.batch_size}; use a smaller --tile-size or --batch-size") from None
                self._tile_cap = smaller

    def _run_section(self, a: np.ndarray, b: np.ndarray, ts: list[float], tile_size: int, overlap: int,
                     progress: ProgressCallback | None) -> list[np.ndarray]:
        height, width = a.shape
        # Pad the whole section once (not each tile) so that a tiled run sees exactly the border
        # context an untiled run would; tile sizes are multiples of size_multiple, so tiles need no padding.
        a, b = _pad_to_multiple(a, self.size_multiple), _pad_to_multiple(b, self.size_multiple)
        padded_h, padded_w = a.shape
        tiles = plan_tiles((padded_h, padded_w), tile_size, overlap)
        tile_h, tile_w = tiles[0].height, tiles[0].width
        blend = self.config.blend
        profiles_y = axis_profiles(axis_starts(padded_h, tile_size, overlap), tile_h, self.halo, blend)
        profiles_x = axis_profiles(axis_starts(padded_w, tile_size, overlap), tile_w, self.halo, blend)
        sums = [np.zeros((padded_h, padded_w), dtype=np.float32) for _ in ts]
        weights = np.zeros((padded_h, padded_w), dtype=np.float32)
        done = 0
        if progress is not None:
            progress(0, len(tiles))
        for batch in _batches(tiles, len(ts), self.config.batch_size):
            predictions = self._predict(a, b, [(tiles[i], ts[j]) for i, j in batch])
            for (i, j), prediction in zip(batch, predictions):
                tile = tiles[i]
                weight = tile_weight(profiles_y[tile.iy], profiles_x[tile.ix])
                sums[j][tile.slices] += prediction * weight
                if j == 0:
                    weights[tile.slices] += weight
            finished = (batch[-1][0] + 1) if batch[-1][1] == len(ts) - 1 else batch[-1][0]
            if progress is not None and finished > done:
                progress(finished, len(tiles))
            done = finished
        if not (weights > 0).all():
            raise AssertionError("blend weights left pixels uncovered; this is a bug in the engine")
        return [np.clip(s[:height, :width] / weights[:height, :width], 0.0, 1.0).astype(np.float32, copy=False)
                for s in sums]

    def _predict(self, a: np.ndarray, b: np.ndarray, items: list[tuple[Tile, float]]) -> list[np.ndarray]:
        """Run the model on one batch of (tile, t) pairs; returns the (height, width) predictions."""
        crops_a, crops_b = [], []
        for tile, _t in items:
            crops_a.append(a[tile.slices])
            crops_b.append(b[tile.slices])
        batch_a = torch.from_numpy(np.stack(crops_a)[:, None]).to(self.device)
        batch_b = torch.from_numpy(np.stack(crops_b)[:, None]).to(self.device)
        batch_t = torch.tensor([t for _tile, t in items], dtype=torch.float32, device=self.device)
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype)
                    if self.autocast_dtype is not None else nullcontext())
        with torch.inference_mode(), autocast:
            out = self.model(batch_a, batch_b, batch_t)
        expected = tuple(batch_a.shape)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            found = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"model returned {found}, expected a tensor of shape {expected}")
        return list(out[:, 0].float().cpu().numpy())

    def _min_auto_tile(self) -> int:
        return round_up(max(MIN_AUTO_TILE, 8 * self.halo), self.size_multiple)


def _batches(tiles: list[Tile], n_ts: int, batch_size: int) -> Iterator[list[tuple[int, int]]]:
    """(tile index, t index) pairs, tile-major, in chunks of batch_size; never all at once."""
    batch: list[tuple[int, int]] = []
    for i in range(len(tiles)):
        for j in range(n_ts):
            batch.append((i, j))
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def _pad_to_multiple(section: np.ndarray, multiple: int) -> np.ndarray:
    """Pad a section at the bottom and right by reflection to multiples of ``multiple`` (any size works)."""
    pad_y, pad_x = -section.shape[0] % multiple, -section.shape[1] % multiple
    if pad_y == 0 and pad_x == 0:
        return section
    return np.pad(section, ((0, pad_y), (0, pad_x)), mode="reflect")


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) != 2 or min(int(s) for s in shape) < 1:
        raise ValueError(f"shape must be (height, width) with positive sizes, got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def _model_int(model: nn.Module, name: str, minimum: int) -> int:
    value = getattr(model, name, None)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"model.{name} must be an integer >= {minimum} (engine contract), got {value!r}")
    return value
