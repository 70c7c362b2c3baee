"""Load what an upsample-z run synthesizes with: a 2-D interpolation engine, or a kind-"volume" model (gan3d)
tiled over a window of sections; and fix's repairers for the defective sections. A dry run times one tile of
the synthesizing model for its estimate (``estimate_seconds``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from emrepair.callbacks import ProgressCallback
from emrepair.choices import ModelKind
from emrepair.distributed.repair import RunRepairer
from emrepair.engine import TiledInterpolator
from emrepair.engine.window import VolumeTiler
from emrepair.errors import UsageError
from emrepair.io.base import Volume
from emrepair.models.kinds import VolumeKind, is_volume
from emrepair.models.registry import ModelMeta
from emrepair.pipelines.options import EngineOptions
from emrepair.pipelines.upsample.plan import positions


@dataclass
class Upsampler:
    """The loaded models of a run.

    Attributes:
        meta: ModelMeta of the model that synthesizes between pairs (name, weights_sha256).
        engine: the 2-D TiledInterpolator (pairs for interpolation models; repairs for volume models).
        repairers: fix's repairers for defective runs (``repairers.build_repairers``).
        volume: the VolumeTiler of a kind-"volume" model, or None.
        repair_model: name of the interpolation model that repairs defective runs.
    """

    meta: ModelMeta
    engine: TiledInterpolator
    repairers: dict[str, RunRepairer]
    volume: VolumeTiler | None = None
    repair_model: str | None = None

    def synthesizer(self, factor: int, depth: int, tile_progress: ProgressCallback | None = None) -> Any:
        """``synthesize(p, section_of)`` for the pairs of a ``depth``-section stack."""
        from emrepair.engine.window import window_synthesizer
        from emrepair.pipelines.upsample.stream import engine_synthesizer

        if self.volume is not None:
            return window_synthesizer(self.volume, factor, depth, tile_progress)
        return engine_synthesizer(self.engine, factor, tile_progress)

    def tiles_per_section(self, shape: tuple[int, int]) -> int:
        """Tiles per section of the synthesizing model."""
        return len((self.volume or self.engine).plan(shape))

    def tile_size_for(self, shape: tuple[int, int]) -> int:
        """Tile side of the synthesizing model."""
        return int((self.volume or self.engine).tile_size_for(shape))

    def memory_estimate(self, shape: tuple[int, int], batch_size: int) -> int:
        """Rough device memory per batch of the synthesizing model."""
        from emrepair.engine import estimate_memory

        if self.volume is not None:
            tile = self.volume.tile_size_for(shape)
            filters = int(getattr(getattr(self.volume.model, "config", None), "filters", 24))
            # float32 activations of a (2 + 2 * context, tile, tile) window upsampled in z, a few alive at once.
            return int(batch_size * 4 * tile * tile * filters * 13 * 4)
        return int(estimate_memory(self.engine.model, self.engine.tile_size_for(shape), batch_size))


def load_upsampler(options: EngineOptions, model_name: str, device: str, shape: tuple[int, int], factor: int,
                   allow_random: bool = False) -> Upsampler:
    """Load the models once. A kind-"volume" ``model_name`` synthesizes between pairs and the default fix model
    repairs; otherwise the interpolation model does both (``repairers.build_repairers``).

    Raises:
        UsageError: a fold model, a volume model without ``factor`` among its factors, no trained weights.
    """
    from emrepair.pipelines.model_choice import default_model_name
    from emrepair.pipelines.options import FixOptions
    from emrepair.pipelines.repairers import build_repairers, runner_for

    volume_model = _volume_model(model_name, device, allow_random)
    engine_fields = {name: getattr(options, name) for name in EngineOptions.__dataclass_fields__}
    if volume_model is not None:
        model, meta = volume_model
        factors = tuple(model.factors)
        if factor not in factors:
            raise UsageError(f"--model {model_name} offers factors {', '.join(map(str, factors))}, not {factor}")
        tiler = runner_for(model, options.engine_config(device), f"--model {model_name}")
        repair_model = default_model_name()
        fix_options = FixOptions(model=repair_model, **{**engine_fields, "device": device})
        engine, _meta, repairers = build_repairers(fix_options, repair_model, device, shape)
        return Upsampler(meta, engine, repairers, tiler, repair_model)
    fix_options = FixOptions(model=model_name, **{**engine_fields, "device": device})
    if not allow_random:
        engine, meta, repairers = build_repairers(fix_options, model_name, device, shape)
        return Upsampler(meta, engine, repairers, None, model_name)
    # fix refuses untrained learned models; benchmarks time them with the default interpolation repair.
    from emrepair.distributed.repair import InterpolationRepairer
    from emrepair.models import load_model

    model, meta = load_model(model_name, device=device, allow_random=True)
    engine = runner_for(model, options.engine_config(device), f"--model {model_name}")
    return Upsampler(meta, engine, {"default": InterpolationRepairer(engine)}, None, model_name)


def _volume_model(model_name: str, device: str, allow_random: bool) -> tuple[VolumeKind, ModelMeta] | None:
    """(model, meta) when ``model_name`` names a kind-"volume" model or checkpoint, else None."""
    from pathlib import Path

    from emrepair.models import get_spec, load_model
    from emrepair.models.registry import REGISTRY

    if model_name in REGISTRY:
        if get_spec(model_name).kind != ModelKind.VOLUME:
            return None
    elif not Path(model_name).expanduser().is_file():
        return None  # build_repairers reports the unknown name
    model, meta = load_model(model_name, device=device, allow_random=allow_random)
    return (model, meta) if is_volume(model) else None


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
