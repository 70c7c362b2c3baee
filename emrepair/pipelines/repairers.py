"""What a run repairs and synthesizes with, loaded once.

``runner_for(model, config)`` is the one place that gives a model its tiled runner (fix, upsample-z and eval ask
it): an interpolation model (``model(a, b, t)``) runs through the engine's ``TiledInterpolator``, section pair by
section pair; a volume model (``model(stack, factor)``, grid models among them) through ``VolumeTiler``, over
windows of sections; a fold model has no runner of its own (``distributed.fold_repairer`` tiles it).
``build_repairers`` makes fix's repairers, keyed by defect kind (the interpolation engine, a grid model's
repairer, the fold model's repairer); upsample-z repairs its defective sections with the same ones.
"""

from __future__ import annotations

from typing import Any

from emrepair.callbacks import WarnCallback
from emrepair.choices import ModelKind
from emrepair.distributed.plan import RepairRun
from emrepair.distributed.repair import RunRepairer
from emrepair.engine import EngineConfig, TiledInterpolator
from emrepair.engine.window import VolumeTiler
from emrepair.errors import UsageError
from emrepair.models.kinds import (
    GridKind,
    InterpolationKind,
    VolumeKind,
    is_grid,
    is_volume,
)
from emrepair.models.registry import ModelMeta
from emrepair.pipelines.model_choice import default_model_name
from emrepair.pipelines.options import FixOptions

DEFAULT_FOLD_MODEL = "sff"
# Sections above this many pixels are repaired region by region (REGION_SIZE squares plus context), which keeps
# memory near a few hundred MB for any section size; smaller sections go through the engine whole.
HUGE_SECTION_PIXELS = 6144 * 6144
REGION_SIZE = 4096
# A grid model repairs through a window of ~25 rows per tile, and each tile's overlap and its DIS flow cost a
# whole window, so its tiles are large (timings by tile size: docs/benchmarks.md, bench_fix_speed.py --tile-size).
GRID_REPAIR_TILE = 1024


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


def build_repairers(options: FixOptions, model_name: str, device: str, shape: tuple[int, int],
                    voxel_size: tuple[float, float, float] | None = None
                    ) -> tuple[TiledInterpolator, ModelMeta, dict[str, RunRepairer]]:
    """Load the models once and make ``(engine, meta, repairers)``; ``repairers`` maps defect kind -> RunRepairer.

    Every kind uses interpolation between the nearest good sections (``"default"``); with a grid model
    (``reslice``, which needs ``voxel_size`` or takes the stack as isotropic) the default repairer fills each gap
    from several sections on each side instead, and the best interpolation model (the returned engine) serves
    runs at the stack ends. Folded sections use the fold model (``"fold"``) when ``options.fold_model``
    resolves to one.
    """
    from emrepair.distributed.repair import InterpolationRepairer
    from emrepair.models import load_model, model_kind
    from emrepair.models.registry import require_interpolation

    model, meta = load_model(model_name, device=device)
    grid = grid_model(model)
    if grid is not None:
        model, _ = load_model(default_model_name(), device=device)
    label = f"--model {model_name}"
    require_interpolation(model, label)
    config = options.engine_config(device)
    engine = runner_for(model, config, label)
    assert isinstance(engine, TiledInterpolator)  # require_interpolation passed
    region = region_size_for(options, shape)
    context = 0
    if region is not None:
        tile = engine.tile_size_for((min(region, shape[0]), min(region, shape[1])))
        context = engine.halo + engine.overlap_for(tile)
    repairers: dict[str, RunRepairer] = {"default": InterpolationRepairer(engine, context)}
    if grid is not None:
        from emrepair.distributed.grid_repairer import GridRepairer
        from emrepair.engine.grid_repair import grid_ratio

        ratio = grid_ratio(voxel_size, 1, grid.config.max_factor)
        tiler = runner_for(grid, config, label, volume_tile_size=options.tile_size or GRID_REPAIR_TILE)
        repairers["default"] = GridRepairer(tiler, ratio, repairers["default"], context)
    fold_name = fold_model_name(options.fold_model)
    if fold_name is not None:
        from emrepair.distributed.fold_repairer import FoldRepairer

        fold_model, fold_meta = load_model(fold_name, device=device)
        if model_kind(fold_model) != ModelKind.FOLD:
            raise UsageError(f"--fold-model {fold_name} is a {model_kind(fold_model)} model, not a fold model "
                             "(see `emrepair models`)")
        repairers["fold"] = FoldRepairer(fold_model, device, repairers["default"], tile_size=options.tile_size,
                                         meta=fold_meta)
    return engine, meta, repairers


def fold_repairable(run: RepairRun) -> bool:
    """Whether the fold repairer takes this run (else it is interpolated whole): only folds, with their band
    geometry, and at least one good neighbour (at a stack end the one neighbour stands for both)."""
    return (set(run.kinds.values()) == {"fold"} and (run.left is not None or run.right is not None)
            and all(z in run.folds for z in run.sections))


def note_fold_repairer(result: Any, repairers: dict[str, Any]) -> None:
    """Record in ``result`` which fold model repairs folded sections, and how far from the band it may change pixels."""
    fold_repairer = repairers.get("fold")
    if fold_repairer is not None and fold_repairer.meta is not None:
        result.fold_model = fold_repairer.meta.name
        result.fold_weights_sha256 = fold_repairer.meta.weights_sha256
        result.fold_reach_px = fold_repairer.reach


def note_one_sided(runs: list[RepairRun], note: WarnCallback) -> None:
    """Say which runs touch a stack end and are copied from their one neighbour (folds the fold model takes are
    not)."""
    for run in runs:
        if run.one_sided and not fold_repairable(run):
            side = "start" if run.left is None else "end"
            note(f"sections {run.first}-{run.last} touch the {side} of the stack; "
                 f"they are copied from section {run.right if run.left is None else run.left}")


def fold_repaired_sections(runs: list[RepairRun], fold_model: str | None) -> list[int]:
    """The sections a fold model repairs (keeping their pixels away from the band); none without a fold model."""
    return [z for run in runs if fold_model and fold_repairable(run) for z in run.sections]


def fold_model_name(choice: str) -> str | None:
    """The fold model to use: ``"auto"`` is ``sff`` when its weights are present, ``"none"`` is whole-section
    interpolation of folded sections, anything else a model name or checkpoint path."""
    if choice == "none":
        return None
    if choice != "auto":
        return choice
    from emrepair.models import list_models

    specs = {spec.name: spec for spec in list_models(kind="fold")}
    spec = specs.get(DEFAULT_FOLD_MODEL)
    return DEFAULT_FOLD_MODEL if spec is not None and spec.has_weights() else None


def region_size_for(options: FixOptions, shape: tuple[int, int]) -> int | None:
    """The xy region size for region-by-region repair, or None to repair whole sections."""
    if options.region_size is not None:
        return int(options.region_size)
    return REGION_SIZE if shape[0] * shape[1] > HUGE_SECTION_PIXELS else None
