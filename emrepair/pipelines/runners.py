"""Which tiled runner a model gets: ``runner_for(model, config)``, the one choice fix, upsample-z and eval make.

An interpolation model (``model(a, b, t)``) runs through the engine's ``TiledInterpolator``, section pair by
section pair; a volume model (``model(stack, factor)``, grid models among them) through ``VolumeTiler``, over
windows of sections. A fold model has no runner of its own (``distributed.fold_repairer`` tiles it).
"""

from __future__ import annotations

from typing import Any

from emrepair.engine import EngineConfig, TiledInterpolator
from emrepair.engine.window import VolumeTiler
from emrepair.models.kinds import (
    GridKind,
    InterpolationKind,
    VolumeKind,
    is_grid,
    is_volume,
)

Runner = TiledInterpolator | VolumeTiler


def runner_for(model: InterpolationKind | VolumeKind | Any, config: EngineConfig, label: str, *,
               volume_tile_size: int | None = None, volume_batch_size: int | None = None) -> Runner:
    """The tiled runner of ``model`` with the engine settings ``config`` (its device included).

    A volume model gets a ``VolumeTiler`` (tile side ``volume_tile_size`` or the config's, batch
    ``volume_batch_size`` or the config's); an interpolation model a ``TiledInterpolator``.

    Raises:
        UsageError: ``model`` is neither (a fold model); ``label`` names it, e.g. ``"--model sff"``.
    """
    if is_volume(model):
        return VolumeTiler(model, config.device, tile_size=volume_tile_size or config.tile_size,
                           overlap=config.overlap, blend=config.blend,
                           batch_size=volume_batch_size or config.batch_size, precision=config.precision)
    from emrepair.models.registry import require_interpolation

    require_interpolation(model, label)
    return TiledInterpolator(model, config)


def grid_model(model: Any) -> GridKind | None:
    """``model`` when it is a grid model (fills gaps from several sections on each side), else None."""
    return model if is_grid(model) else None


__all__ = ["Runner", "grid_model", "runner_for"]
