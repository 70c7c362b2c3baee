"""Upsampling with a volume model (kind "volume", e.g. ``gan3d``): a sliding window of sections, tiled in xy.

Pairs are synthesized in groups of the model's ``z_group`` consecutive pairs (1 unless the model says, and
fewer where a group's output would pass WINDOW_BYTES): the group of pairs g * group .. (g + 1) * group - 1
sees its sections and ``z_context`` more on each side (WINDOW_CONTEXT unless the model says), clipped to the
stack, so each pair's result depends only on its group, never on how the run is cut into blocks, shares or
workers. The window is cut into xy tiles, run and blended by the engine's ``TiledAggregator``; only the
factor - 1 new sections between p and p + 1 are kept: originals are never taken from the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from emrepair.callbacks import ProgressCallback
from emrepair.engine.aggregator import TiledAggregator
from emrepair.engine.device import volume_autocast_dtype
from emrepair.engine.intensity import IntensityMap
from emrepair.engine.tiling import auto_overlap, plan_tiles
from emrepair.models.kinds import is_grid

# Sections of context on each side of the pair; gan3d's 3x3x3 convolutions see about this far along z.
WINDOW_CONTEXT = 1
# Tile side when none is given: 3-D activations of a (4, 256, 256) window stay near 100 MB per tile.
DEFAULT_VOLUME_TILE = 256


# Most bytes of float32 output one window keeps (group * factor sections): bounds memory on huge sections.
WINDOW_BYTES = 1 << 30


def window_of(p: int, depth: int, context: int = WINDOW_CONTEXT, group: int = 1) -> range:
    """Input sections the model sees for the pair (p, p + 1) of a ``depth``-section stack: the pairs of p's
    group and ``context`` sections each side."""
    if not 0 <= p < depth - 1:
        raise ValueError(f"pair {p} does not exist in a stack of {depth} sections")
    first = p // group * group
    last = min(first + group, depth - 1)  # one past the group's last pair
    return range(max(0, first - context), min(depth, last + 1 + context))


def pair_group(model: torch.nn.Module, factor: int, shape: tuple[int, int]) -> int:
    """Pairs per window for ``model``: its ``z_group``, fewer when their output would pass WINDOW_BYTES."""
    wanted = max(1, int(getattr(model, "z_group", 1)))
    fits = WINDOW_BYTES // max(1, factor * int(shape[0]) * int(shape[1]) * 4)
    return max(1, min(wanted, fits))


class VolumeTiler:
    """Runs a kind-"volume" model (``model(stack, factor)``) over a window of sections, tile by tile in xy.

    ``tile_size`` / ``overlap`` None choose DEFAULT_VOLUME_TILE and the engine's ``auto_overlap``; ``blend`` is
    one of the engine's modes. Runs in float32 on ``device``, except that with ``precision`` "auto" (the
    default) ``engine.device.volume_autocast_dtype`` may say the model runs in bf16 (a model that declares
    ``cpu_bf16``, on a CPU with native bf16); any other precision (``fp32``, as ``--precision`` gives it) keeps
    float32.
    """

    def __init__(self, model: torch.nn.Module, device: str, tile_size: int | None = None,
                 overlap: int | None = None, blend: str = "gaussian", batch_size: int = 1,
                 precision: str = "auto") -> None:
        self.device = torch.device(device)
        self.halo = int(getattr(model, "halo", 0))
        self.size_multiple = max(1, int(getattr(model, "size_multiple", 1)))
        self.tile_size, self.overlap, self.blend = tile_size, overlap, blend
        self.autocast_dtype = volume_autocast_dtype(model, self.device) if precision == "auto" else None
        self.tiled = TiledAggregator(model, self.device, self.halo, self.size_multiple, blend, max(1, int(batch_size)),
                                     self.autocast_dtype, fixed_tile=tile_size is not None)
        self.model = self.tiled.model

    def tile_size_for(self, shape: tuple[int, int]) -> int:
        """The tile side used for sections of ``shape`` (a multiple of the model's size_multiple)."""
        tile = self.tile_size or DEFAULT_VOLUME_TILE
        tile = min(tile, max(shape))
        return self.tiled.capped(-(-tile // self.size_multiple) * self.size_multiple)

    def overlap_for(self, tile: int) -> int:
        """The tile overlap: as given, else twice the halo plus a blending band."""
        return auto_overlap(tile, self.halo) if self.overlap is None else min(self.overlap, tile - 1)

    def plan(self, shape: tuple[int, int]) -> list[Any]:
        """The xy tiles of a (padded) section of ``shape``."""
        tile = self.tile_size_for(shape)
        padded = [-(-int(s) // self.size_multiple) * self.size_multiple for s in shape]
        return plan_tiles((padded[0], padded[1]), tile, self.overlap_for(tile))

    def upsample(self, window: np.ndarray, factor: int, keep: range,
                 progress: ProgressCallback | None = None) -> np.ndarray:
        """Output sections ``keep`` (indices into the (D - 1) * factor + 1 outputs) of ``window`` (D, H, W)
        float32 in [0, 1]; -> (len(keep), H, W) float32."""
        if window.ndim != 3 or window.shape[0] < 2:
            raise ValueError(f"window must be (D >= 2, H, W), got {window.shape}")
        return self.run(window, lambda stack: self.model(stack, factor), (window.shape[0] - 1) * factor + 1,
                        keep, progress)

    def fill(self, window: np.ndarray, rows: list[int], total: int, keep: range,
             progress: ProgressCallback | None = None) -> np.ndarray:
        """Rows ``keep`` of a ``total``-row grid whose rows ``rows`` are the sections of ``window`` (K, H, W),
        from a model with ``fill_grid`` (reslice); -> (len(keep), H, W) float32."""
        if not is_grid(self.model):
            raise ValueError(f"model {getattr(self.model, 'name', '?')!r} cannot fill gaps on a grid")
        return self.run(window, lambda stack: self.model.fill_grid(stack, rows, total), total, keep, progress)

    def run(self, window: np.ndarray, forward: Callable[[torch.Tensor], torch.Tensor], total: int, keep: range,
            progress: ProgressCallback | None = None) -> np.ndarray:
        """``forward`` ((B, 1, D, h, w) tiles -> (B, 1, total, h, w)) over the xy tiles of ``window`` (D, H, W),
        blended by the engine's ``TiledAggregator``; output rows ``keep`` -> (len(keep), H, W) float32."""

        def tile_forward(crops: list[torch.Tensor], _ks: list[int]) -> torch.Tensor:
            out = forward(crops[0])
            expected = tuple(crops[0].shape[:2]) + (total,) + tuple(crops[0].shape[-2:])
            if tuple(out.shape) != expected:
                raise ValueError(f"volume model returned {tuple(out.shape)}, expected {expected}")
            return out[:, 0, keep.start:keep.stop]

        shape = window.shape[1:]
        return self.tiled.run([window], tile_forward, lambda: self.tile_size_for(shape), self.overlap_for,
                              channels=len(keep), progress=progress)


def window_synthesizer(tiler: VolumeTiler, factor: int, depth: int,
                       tile_progress: ProgressCallback | None = None) -> Callable[..., list[np.ndarray]]:
    """``synthesize(p, section_of)``: the factor - 1 sections between p and p + 1 from the volume model, in the
    sections' dtype (one IntensityMap over the window, as fix maps a run's neighbours). A group's sections are
    computed once and kept until a pair of another group is asked for."""
    context = int(getattr(tiler.model, "z_context", WINDOW_CONTEXT))
    cache: dict[str, Any] = {}

    def synthesize(p: int, section_of: Callable[[int], np.ndarray]) -> list[np.ndarray]:
        if "group" not in cache:
            cache["group"] = pair_group(tiler.model, factor, section_of(p).shape)
        group = cache["group"]
        first = p // group * group
        if cache.get("first") != first:
            zs = window_of(p, depth, context, group)
            sections = [section_of(z) for z in zs]
            mapping = IntensityMap.for_sections(sections)
            window = np.stack([mapping.to_unit(s) for s in sections])
            c = first - zs.start  # index of the group's first section in the window
            pairs = min(first + group, depth - 1) - first
            keep = range(c * factor, (c + pairs) * factor + 1)
            cache.update(first=first, mapping=mapping, images=tiler.upsample(window, factor, keep, tile_progress))
        k = (p - first) * factor
        return [cache["mapping"].from_unit(image) for image in cache["images"][k + 1:k + factor]]

    return synthesize
