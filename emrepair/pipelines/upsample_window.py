"""Upsampling with a volume model (kind "volume", e.g. ``gan3d``): a sliding window of sections, tiled in xy.

For the pair of sections (p, p + 1) the model sees the window p - WINDOW_CONTEXT .. p + 1 + WINDOW_CONTEXT
(clipped to the stack), so each pair's result depends only on p, never on how the run is cut into blocks,
shares or workers. The window is cut into xy tiles by the engine's tile grid (``plan_tiles``) and the tiles'
outputs are blended with the engine's weights (``axis_profiles`` / ``tile_weight``); only the factor - 1 new
sections between p and p + 1 are kept: originals are never taken from the model.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from emrepair.engine.blending import axis_profiles, tile_weight
from emrepair.engine.tiling import auto_overlap, axis_starts, plan_tiles
from emrepair.pipelines.intensity import IntensityMap

ProgressCallback = Callable[[int, int], None]
# Sections of context on each side of the pair; gan3d's 3x3x3 convolutions see about this far along z.
WINDOW_CONTEXT = 1
# Tile side when none is given: 3-D activations of a (4, 256, 256) window stay near 100 MB per tile.
DEFAULT_VOLUME_TILE = 256


def window_of(p: int, depth: int, context: int = WINDOW_CONTEXT) -> range:
    """Input sections the model sees for the pair (p, p + 1) of a ``depth``-section stack."""
    if not 0 <= p < depth - 1:
        raise ValueError(f"pair {p} does not exist in a stack of {depth} sections")
    return range(max(0, p - context), min(depth, p + 2 + context))


class VolumeTiler:
    """Runs a kind-"volume" model (``model(stack, factor)``) over a window of sections, tile by tile in xy.

    ``tile_size`` / ``overlap`` None choose DEFAULT_VOLUME_TILE and the engine's ``auto_overlap``; ``blend`` is
    one of the engine's modes. Runs in float32 (no autocast) on ``device``.
    """

    def __init__(self, model: torch.nn.Module, device: str, tile_size: int | None = None,
                 overlap: int | None = None, blend: str = "gaussian", batch_size: int = 1) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.halo = int(getattr(model, "halo", 0))
        self.size_multiple = max(1, int(getattr(model, "size_multiple", 1)))
        self.tile_size, self.overlap, self.blend = tile_size, overlap, blend
        self.batch_size = max(1, int(batch_size))

    def tile_size_for(self, shape: tuple[int, int]) -> int:
        """The tile side used for sections of ``shape`` (a multiple of the model's size_multiple)."""
        tile = self.tile_size or DEFAULT_VOLUME_TILE
        tile = min(tile, max(shape))
        return -(-tile // self.size_multiple) * self.size_multiple

    def overlap_for(self, tile: int) -> int:
        """The tile overlap: as given, else twice the halo plus a blending band."""
        return auto_overlap(tile, self.halo) if self.overlap is None else min(self.overlap, tile - 1)

    def plan(self, shape: tuple[int, int]) -> list[Any]:
        """The xy tiles of a (padded) section of ``shape``."""
        tile = self.tile_size_for(shape)
        return plan_tiles(self._padded(shape), tile, self.overlap_for(tile))

    def upsample(self, window: np.ndarray, factor: int, keep: range,
                 progress: ProgressCallback | None = None) -> np.ndarray:
        """Output sections ``keep`` (indices into the (D - 1) * factor + 1 outputs) of ``window`` (D, H, W)
        float32 in [0, 1]; -> (len(keep), H, W) float32."""
        if window.ndim != 3 or window.shape[0] < 2:
            raise ValueError(f"window must be (D >= 2, H, W), got {window.shape}")
        depth, height, width = window.shape
        padded_shape = self._padded((height, width))
        pad = ((0, 0), (0, padded_shape[0] - height), (0, padded_shape[1] - width))
        padded = np.pad(window, pad, mode="reflect") if any(p[1] for p in pad) else window
        tile = self.tile_size_for((height, width))
        overlap = self.overlap_for(tile)
        tiles = plan_tiles(padded_shape, tile, overlap)
        tile_h, tile_w = tiles[0].height, tiles[0].width
        prof_y = axis_profiles(axis_starts(padded_shape[0], tile, overlap), tile_h, self.halo, self.blend)
        prof_x = axis_profiles(axis_starts(padded_shape[1], tile, overlap), tile_w, self.halo, self.blend)
        total = np.zeros((len(keep),) + padded_shape, dtype=np.float32)
        weights = np.zeros(padded_shape, dtype=np.float32)
        for first in range(0, len(tiles), self.batch_size):
            batch = tiles[first:first + self.batch_size]
            stack = np.stack([padded[:, t.slices[0], t.slices[1]] for t in batch])[:, None]
            with torch.no_grad():
                out = self.model(torch.from_numpy(np.ascontiguousarray(stack)).to(self.device), factor)
            expected = (len(batch), 1, (depth - 1) * factor + 1, tile_h, tile_w)
            if tuple(out.shape) != expected:
                raise ValueError(f"volume model returned {tuple(out.shape)}, expected {expected}")
            result = out[:, 0, keep.start:keep.stop].float().cpu().numpy()
            for t, pred in zip(batch, result):
                weight = tile_weight(prof_y[t.iy], prof_x[t.ix])
                total[:, t.slices[0], t.slices[1]] += pred * weight
                weights[t.slices] += weight
            if progress is not None:
                progress(min(first + self.batch_size, len(tiles)), len(tiles))
        return (total / weights)[:, :height, :width]

    def _padded(self, shape: tuple[int, int]) -> tuple[int, int]:
        m = self.size_multiple
        return (-(-int(shape[0]) // m) * m, -(-int(shape[1]) // m) * m)


def window_synthesizer(tiler: VolumeTiler, factor: int, depth: int,
                       tile_progress: ProgressCallback | None = None) -> Callable[..., list[np.ndarray]]:
    """``synthesize(p, section_of)``: the factor - 1 sections between p and p + 1 from the volume model, in the
    sections' dtype (one IntensityMap over the window, as fix maps a run's neighbours)."""

    def synthesize(p: int, section_of: Callable[[int], np.ndarray]) -> list[np.ndarray]:
        zs = window_of(p, depth)
        sections = [section_of(z) for z in zs]
        mapping = IntensityMap.for_sections(sections)
        window = np.stack([mapping.to_unit(s) for s in sections])
        c = p - zs.start  # index of section p in the window
        images = tiler.upsample(window, factor, range(c * factor + 1, (c + 1) * factor), tile_progress)
        return [mapping.from_unit(image) for image in images]

    return synthesize
