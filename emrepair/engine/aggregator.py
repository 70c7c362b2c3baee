"""The one tiled aggregator: inputs padded, cut into overlapping tiles, run through a model batch by batch on a
device, and blended back into whole sections.

Every kind of model runs through it: interpolation models (``engine.interpolator``), volume and grid models
(``engine.window``) and fold models (``engine.fold_repair``). Those adapters state only what their inputs are
and what one forward pass is; the aggregator owns the rest (the split of TorchIO's GridSampler, where the tiles
lie, from its GridAggregator, where predictions add up, and nnU-Net's weighted sums divided once at the end):

1. **Pad**: each input (..., H, W) is reflect-padded once at the bottom and right to the model's size multiple,
   so a tiled run sees the border context an untiled one does.
2. **Plan**: ``plan_tiles`` over the padded section with the adapter's tile size and overlap; the blend weights
   of ``blending`` (``halo`` pixels at inner edges weigh nothing).
3. **Batch**: work items (tile, k) for k in range(per_tile), tile-major, ``batch_size`` per forward pass;
   tiles the adapter does not need are skipped.
4. **Device**: the items' crops stacked as (B, 1, ..., h, w) on the device, the forward pass under
   ``torch.inference_mode`` and the autocast dtype (None: float32), the predictions back as float32.
5. **Accumulate / normalise**: item k's prediction (c, h, w) times its tile's weight into output channels
   k * c .. (k + 1) * c - 1, the weight once per tile; at the end divided by the weights, cropped to (H, W) and,
   if asked, clipped to [0, 1]. Pixels no tile covered (only where tiles were skipped) are 0.

Out of memory (``torch.cuda.OutOfMemoryError``): the cache is emptied and the section run again with half the
batch while more than one item went in, then with half the tile unless the tile size was fixed or would fall
below ``min_tile``; else a ``UsageError``. The smaller batch and tile are kept for later runs.
Progress: ``progress(done_tiles, total)`` at the start and whenever a batch or a skipped tile completes more
tiles, ending at (total, total); after an out-of-memory retry it starts again from 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from emrepair.callbacks import ProgressCallback
from emrepair.engine.blending import axis_profiles, tile_weight
from emrepair.engine.memory import MIN_AUTO_TILE, round_down, round_up
from emrepair.engine.tiling import Tile, axis_starts, plan_tiles
from emrepair.errors import UsageError

# forward(crops, ks): crops are the inputs' (B, 1, ..., h, w) tiles on the device, ks the items' indices in
# range(per_tile); returns (B, c, h, w) predictions
Forward = Callable[[list[torch.Tensor], list[int]], torch.Tensor]


def pad_to_multiple(array: np.ndarray, multiple: int) -> np.ndarray:
    """``array`` (..., H, W) reflect-padded at the bottom and right to multiples of ``multiple`` (itself when
    it already is)."""
    pad_y, pad_x = -array.shape[-2] % multiple, -array.shape[-1] % multiple
    if pad_y == 0 and pad_x == 0:
        return array
    return np.pad(array, [(0, 0)] * (array.ndim - 2) + [(0, pad_y), (0, pad_x)], mode="reflect")


class TiledAggregator:
    """Runs one model tile by tile over sections (see the module doc); holds the back-off caps between runs.

    Args:
        model: moved to ``device`` and put in eval mode once.
        device: where the forward passes run.
        halo, size_multiple: the model's context pixels at tile edges and the multiple H and W must have.
        blend: one of ``blending.BLEND_MODES``.
        batch_size: work items per forward pass.
        autocast_dtype: the dtype the forward passes autocast to, or None for float32.
        fixed_tile: the tile size was asked for, so an out-of-memory error never shrinks it.
    """

    def __init__(self, model: nn.Module, device: torch.device, halo: int, size_multiple: int,
                 blend: str = "gaussian", batch_size: int = 1, autocast_dtype: torch.dtype | None = None,
                 fixed_tile: bool = False) -> None:
        self.device = device
        self.model = model.to(device).eval()
        self.halo, self.size_multiple, self.blend = halo, size_multiple, blend
        self.batch_size = batch_size
        self.autocast_dtype = autocast_dtype
        self.fixed_tile = fixed_tile
        self.tile_cap: int | None = None  # set after an out-of-memory error
        self._items = 0  # work items of the pass at work

    @property
    def min_tile(self) -> int:
        """The smallest tile an out-of-memory back-off goes down to."""
        return round_up(max(MIN_AUTO_TILE, 8 * self.halo), self.size_multiple)

    def capped(self, tile: int) -> int:
        """``tile``, no larger than the cap an out-of-memory error left."""
        return tile if self.tile_cap is None else min(tile, self.tile_cap)

    def run(self, inputs: Sequence[np.ndarray], forward: Forward, tile_for: Callable[[], int],
            overlap_for: Callable[[int], int], channels: int = 1, per_tile: int = 1,
            needed: Callable[[Tile], bool] | None = None, clip: bool = False,
            progress: ProgressCallback | None = None) -> np.ndarray:
        """The blended predictions of ``forward`` over ``inputs`` -> (per_tile * channels, H, W) float32.

        Args:
            inputs: arrays (..., H, W) of one H and W, cut into the same tiles.
            forward: one forward pass (see ``Forward``), each item giving ``channels`` output sections.
            tile_for: the tile side to use (asked again after an out-of-memory error; capped here).
            overlap_for: the overlap for a tile side.
            per_tile: work items per tile.
            needed: whether a tile has to run at all (None: every tile does).
            clip: clip the result to [0, 1].
            progress: see the module doc.
        """
        height, width = inputs[0].shape[-2:]
        padded = [pad_to_multiple(x, self.size_multiple) for x in inputs]
        while True:
            tile = self.capped(tile_for())
            try:
                sums, weights, skipped = self._pass(padded, forward, tile, overlap_for(tile), channels,
                                                    per_tile, needed, progress)
                break
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                self._back_off(tile)
        if not skipped and not (weights > 0).all():
            raise AssertionError("blend weights left pixels uncovered; this is a bug in the engine")
        cover = weights[:height, :width]
        out = np.divide(sums[:, :height, :width], cover, out=np.zeros((len(sums), height, width), np.float32),
                        where=cover > 0)
        return np.clip(out, 0.0, 1.0) if clip else out

    def _pass(self, padded: list[np.ndarray], forward: Forward, tile_size: int, overlap: int, channels: int,
              per_tile: int, needed: Callable[[Tile], bool] | None, progress: ProgressCallback | None
              ) -> tuple[np.ndarray, np.ndarray, bool]:
        """One run over the tiles: the weighted sums, the summed weights and whether a tile was skipped."""
        shape = padded[0].shape[-2:]
        tiles = plan_tiles(shape, tile_size, overlap)
        profiles_y = axis_profiles(axis_starts(shape[0], tile_size, overlap), tiles[0].height, self.halo, self.blend)
        profiles_x = axis_profiles(axis_starts(shape[1], tile_size, overlap), tiles[0].width, self.halo, self.blend)
        sums = np.zeros((per_tile * channels,) + tuple(shape), dtype=np.float32)
        weights = np.zeros(shape, dtype=np.float32)
        skip = [needed is not None and not needed(t) for t in tiles]
        self._items = per_tile * skip.count(False)
        done = 0
        if progress is not None:
            progress(0, len(tiles))
        for items, finished in _schedule(skip, per_tile, self.batch_size):
            if items:
                result = self._forward(padded, forward, [(tiles[i], k) for i, k in items])
                for (i, k), prediction in zip(items, result):
                    tile = tiles[i]
                    weight = tile_weight(profiles_y[tile.iy], profiles_x[tile.ix])
                    sums[(slice(k * channels, (k + 1) * channels), *tile.slices)] += prediction * weight
                    if k == 0:
                        weights[tile.slices] += weight
            if progress is not None and finished > done:
                progress(finished, len(tiles))
            done = max(done, finished)
        if progress is not None and done < len(tiles):
            progress(len(tiles), len(tiles))
        return sums, weights, any(skip)

    def _forward(self, padded: list[np.ndarray], forward: Forward, items: list[tuple[Tile, int]]) -> np.ndarray:
        """One batch through the model: crops to the device, the forward pass, float32 predictions back."""
        crops = [torch.from_numpy(np.stack([x[(..., *tile.slices)] for tile, _k in items])[:, None]).to(self.device)
                 for x in padded]
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype)
                    if self.autocast_dtype is not None else nullcontext())
        with torch.inference_mode(), autocast:
            out = forward(crops, [k for _tile, k in items])
        return out.float().cpu().numpy()

    def _back_off(self, tile: int) -> None:
        """Halve the batch while more than one item went in, else the tile; UsageError when neither can."""
        batch = min(self.batch_size, self._items)
        if batch > 1:
            self.batch_size = batch // 2
            return
        smaller = round_down(tile // 2, self.size_multiple)
        if self.fixed_tile or smaller < self.min_tile:
            raise UsageError(f"out of GPU memory with tile size {tile} and batch size {self.batch_size}; "
                             "use a smaller --tile-size or --batch-size") from None
        self.tile_cap = smaller


def _schedule(skip: list[bool], per_tile: int, batch_size: int) -> Iterator[tuple[list[tuple[int, int]], int]]:
    """Batches of (tile index, k) items, tile-major, each with the count of leading tiles finished once it has
    run; a tile skipped while no items wait gives an empty batch of its own."""
    batch: list[tuple[int, int]] = []
    for i, skipped in enumerate(skip):
        if skipped:
            if not batch:
                yield [], i + 1
            continue
        for k in range(per_tile):
            batch.append((i, k))
            if len(batch) == batch_size:
                yield batch, (i + 1 if k == per_tile - 1 else i)
                batch = []
    if batch:
        yield batch, batch[-1][0] + 1
