"""Tiled, batched, blended interpolation of one section pair on a device (numpy in, numpy out)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from emrepair.callbacks import ProgressCallback
from emrepair.engine.aggregator import TiledAggregator
from emrepair.engine.config import EngineConfig
from emrepair.engine.device import resolve_device, resolve_precision
from emrepair.engine.inputs import check_pair, check_positions
from emrepair.engine.memory import (
    CPU_DEFAULT_TILE,
    GPU_MEMORY_FRACTION,
    bytes_per_pixel,
    free_cuda_bytes,
    round_up,
    tile_size_for_budget,
)
from emrepair.engine.tiling import Tile, auto_overlap, plan_tiles
from emrepair.errors import UsageError


class TiledInterpolator:
    """Runs an interpolation model over sections of any size, tile by tile.

    The model (``model(a, b, t)`` with a, b (B, 1, H, W) in [0, 1] and t (B,); attributes ``halo``
    and ``size_multiple``) is moved to the device once and put in eval mode. Each call to
    :meth:`interpolate` hands the pair to the engine's ``TiledAggregator`` (pad, tile, batch, blend,
    back off when memory runs out): one work item per (tile, t), one forward pass ``model(a, b, t)``.
    This class chooses the tile size (from free GPU memory on CUDA) and the overlap.
    """

    def __init__(self, model: nn.Module, config: EngineConfig | None = None) -> None:
        self.config = config if config is not None else EngineConfig()
        self.halo = _model_int(model, "halo", minimum=0)
        self.size_multiple = _model_int(model, "size_multiple", minimum=1)
        self.device = resolve_device(self.config.device)
        self.autocast_dtype = resolve_precision(self.config.precision, self.device)
        self.tiled = TiledAggregator(model, self.device, self.halo, self.size_multiple, self.config.blend,
                                     self.config.batch_size, self.autocast_dtype,
                                     fixed_tile=self.config.tile_size is not None)
        self.model = self.tiled.model
        self._bytes_per_pixel: float | None = None
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
        return min(self.tiled.capped(tile), round_up(max(height, width), self.size_multiple))

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
            UsageError: CUDA ran out of memory at batch 1 and the smallest tile size or with a fixed tile size.
        """
        a32, b32 = check_pair(a, b)
        positions = check_positions(ts)
        if not positions:
            return []

        def forward(crops: list[torch.Tensor], ks: list[int]) -> torch.Tensor:
            batch_t = torch.tensor([positions[k] for k in ks], dtype=torch.float32, device=self.device)
            out = self.model(crops[0], crops[1], batch_t)
            expected = tuple(crops[0].shape)
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
                found = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"model returned {found}, expected a tensor of shape {expected}")
            return out

        # the (tile, t) pairs run tile-major, so all ts of a tile usually share a batch
        out = self.tiled.run([a32, b32], forward, lambda: self.tile_size_for(a32.shape), self.overlap_for,
                             per_tile=len(positions), clip=True, progress=progress)
        return list(out)

    def _min_auto_tile(self) -> int:
        return self.tiled.min_tile


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) != 2 or min(int(s) for s in shape) < 1:
        raise ValueError(f"shape must be (height, width) with positive sizes, got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def _model_int(model: nn.Module, name: str, minimum: int) -> int:
    value = getattr(model, name, None)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"model.{name} must be an integer >= {minimum} (engine contract), got {value!r}")
    return value
