"""Which trainer trains a model: one entry, :func:`run_training`, for ``emrepair train`` and ``emrepair.train``.

The step trainers draw crops from the given stacks for a number of steps or epochs: ``loop.train`` for the
interpolation models, ``volume.train_volume`` for the volume models (gan3d, and reslice's "windows" stage).
The timed trainers run until ``steps`` or ``minutes`` run out, on stacks they know: sff's unfolding and fusion
("unfold", simulated folds in the fold stacks of training/fold_data.py), sff's contrast correction
("contrast"), and reslice's plane trainer ("planes") and xy fusion ("fusion") on isotropic stacks.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from emrepair.callbacks import (
    TimedProgressCallback,
    TrainProgressCallback,
    WarnCallback,
)
from emrepair.choices import ModelKind, TrainStage, values
from emrepair.errors import InputError, UsageError
from emrepair.training.loop import TrainConfig, TrainResult

STAGES = {"sff": (TrainStage.UNFOLD.value, TrainStage.CONTRAST.value),
          "reslice": (TrainStage.WINDOWS.value, TrainStage.PLANES.value, TrainStage.FUSION.value)}
TIMED_STAGES = tuple(stage for stage in values(TrainStage) if stage != TrainStage.WINDOWS)
STEP_DEFAULTS = {"batch_size": 8, "patch_size": 128, "lr": 1e-3}
RESLICE_MODEL_SETTINGS = ("flow", "widths", "plane_offsets", "flow_method", "fuse_widths")


@dataclass
class TimedResult:
    """What a timed training run produced: the checkpoint and the run's summary (also the checkpoint's meta)."""

    output: str
    summary: dict[str, Any]


def stage_of(model: str, stage: str | None) -> str | None:
    """The stage to train (the model's first when None); a one-line UsageError for a stage the model lacks."""
    choices = STAGES.get(model)
    if choices is None:
        if stage is not None:
            raise UsageError(f"--stage is for {' and '.join(STAGES)}; {model} has one trainer")
        return None
    stage = stage or choices[0]
    if stage not in choices:
        raise UsageError(f"--stage for {model} must be one of {', '.join(choices)}, got {stage!r}")
    return stage


def run_training(config: TrainConfig, *, stage: str | None = None, minutes: float | None = None,
                 interpolator_weights: str | None = None, progress: TrainProgressCallback | None = None,
                 timed_progress: TimedProgressCallback | None = None,
                 message: WarnCallback | None = None) -> TrainResult | TimedResult:
    """Train ``config.model`` (its ``stage``) with the trainer that fits it.

    ``batch_size``, ``patch_size`` and ``lr`` left None take the trainer's defaults; ``steps`` and ``epochs``
    both None mean 1000 steps for a step trainer and the run's own budget for a timed one (``minutes``, 30 by
    default). ``progress(step, total, info)`` follows a step trainer, ``timed_progress(step, losses)`` a timed
    one (every 20 steps).

    Example:
        >>> run_training(TrainConfig(inputs=["stack.h5"], output="mine.pt", model="flowunet", steps=100))  # doctest: +SKIP
    """
    stage = stage_of(config.model, stage)
    if stage in TIMED_STAGES:
        return TimedResult(config.output, run_timed(config, stage, minutes, interpolator_weights, timed_progress))
    if minutes is not None:
        raise UsageError("--minutes is for the timed trainers (--model sff, --model reslice --stage planes|fusion)")
    if interpolator_weights is not None:
        raise UsageError("--interpolator-weights is for --model sff")
    config = replace(config, **{k: v for k, v in STEP_DEFAULTS.items() if getattr(config, k) is None})
    if config.steps is None and config.epochs is None:
        config = replace(config, steps=1000)
    return step_trainer_for(config.model)(config, progress=progress, message=message)


def step_trainer_for(model: str) -> Any:
    """``train`` for interpolation models, ``train_volume`` for kind "volume" (gan3d, reslice); both take
    ``(config, progress, message)`` and return a TrainResult."""
    from emrepair.models import get_spec

    try:
        kind = get_spec(model).kind
    except UsageError:  # not a registered name: train() reports it (or uses --init's model)
        kind = ModelKind.INTERPOLATION
    if kind == ModelKind.VOLUME:
        from emrepair.training.volume import train_volume

        return train_volume
    from emrepair.training.loop import train

    return train


def run_timed(config: TrainConfig, stage: str, minutes: float | None, interpolator_weights: str | None,
              progress: TimedProgressCallback | None) -> dict[str, Any]:
    """A timed run of sff (stage "unfold" or "contrast") or reslice ("planes" or "fusion"); returns its summary.

    ``config.model_options`` (``--set``) holds fields of the run's config (e.g. ``flow_weight``, ``factors``,
    ``axes``) and of the model (sff: e.g. ``interpolator``; reslice: ``flow``, ``widths``, ``plane_offsets``,
    ``flow_method``, ``fuse_widths``).
    """
    from emrepair.engine.device import resolve_device

    _refuse_step_options(config)
    data_dir, names = stack_sources(config.inputs, fold=config.model == "sff")
    settings = dict(config.model_options)
    config_cls = _config_class(stage)
    own = {f.name for f in fields(config_cls)}
    given = {"steps": config.steps, "minutes": minutes, "batch_size": config.batch_size,
             "crop": config.patch_size, "lr": config.lr, "seed": config.seed}
    values = {k: settings.pop(k) for k in list(settings) if k in own} | {k: v for k, v in given.items() if v is not None}
    run_config = build(config_cls, values)
    device = str(resolve_device(config.device))
    output, init = Path(config.output), Path(config.init) if config.init else None
    if stage == "unfold":
        from emrepair.models.sff import SFFConfig
        from emrepair.training.sff import train_sff

        weights = Path(interpolator_weights) if interpolator_weights else None
        return train_sff(data_dir, output, run_config, build(SFFConfig, settings), device=device, progress=progress,
                         interpolator_weights=weights, init=init, names=names)
    if interpolator_weights is not None:
        raise UsageError("--interpolator-weights is for sff's unfold stage")
    if stage == "contrast":
        from emrepair.training.contrast import train_contrast

        _refuse_settings(settings, ())
        return train_contrast(data_dir, init or _shipped("sff"), output, run_config, device=device,
                              progress=progress, names=names)
    from emrepair.training.reslice import train_reslice_stage

    _refuse_settings(settings, RESLICE_MODEL_SETTINGS)
    tuples = {k: tuple(v) if isinstance(v, (list, tuple)) else (v,)
              for k, v in settings.items() if k in ("widths", "plane_offsets", "fuse_widths")}
    return train_reslice_stage(stage, data_dir, output, run_config, names, init=init, device=device,
                               progress=progress, **(settings | tuples))


def stack_sources(inputs: list[str], fold: bool) -> tuple[Path, tuple[str, ...] | None]:
    """(folder, names) for a timed trainer: one folder (every known stack in it; reslice: its default stack) or
    stacks in one folder. Fold stacks must be the known ones (training/fold_data.py), named by their stems."""
    from emrepair.training.fold_data import FOLD_STACKS
    from emrepair.training.reslice import DEFAULT_STACKS

    paths = [Path(p).expanduser() for p in inputs]
    if len(paths) == 1 and paths[0].is_dir():
        return paths[0], None if fold else DEFAULT_STACKS
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: no such stack")
    if len({p.resolve().parent for p in paths}) != 1:
        raise UsageError("the timed trainers read their stacks from one folder: give stacks that lie in one")
    if not fold:
        return paths[0].parent, tuple(p.name for p in paths)
    known = {spec.name for spec in FOLD_STACKS}
    for path in paths:
        if path.stem not in known:
            raise InputError(f"{path}: not one of the fold training stacks ({', '.join(sorted(known))}); "
                             "sff is trained on folds simulated in these")
    return paths[0].parent, tuple(p.stem for p in paths)


def build(cls: type, values: dict[str, Any]) -> Any:
    """``cls(**values)`` with a scalar given for a tuple field made a 1-tuple; a one-line UsageError when the
    values do not fit."""
    defaults = {f.name: f.default for f in fields(cls)}
    fixed = {k: (v,) if isinstance(defaults.get(k), tuple) and not isinstance(v, (list, tuple)) else v
             for k, v in values.items()}
    try:
        return cls(**fixed)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid {cls.__name__} settings {values}: {exc}") from None


def _config_class(stage: str) -> type:
    if stage == "unfold":
        from emrepair.training.sff import FoldTrainConfig

        return FoldTrainConfig
    if stage == "contrast":
        from emrepair.training.contrast import ContrastTrainConfig

        return ContrastTrainConfig
    from emrepair.training.reslice import ResliceTrainConfig

    return ResliceTrainConfig


def _refuse_step_options(config: TrainConfig) -> None:
    """The options only the step trainers read, refused rather than ignored by a timed one."""
    given = {"--epochs": config.epochs is not None, "--resume": config.resume, "--val": bool(config.val_inputs),
             "--val-every": config.val_every is not None, "--vgg-weights": config.vgg_weights is not None,
             "--isotropic/--anisotropic": config.isotropic is not None}
    used = [name for name, value in given.items() if value]
    if used:
        raise UsageError(f"{', '.join(used)}: not read by the timed trainers (give --steps or --minutes)")


def _refuse_settings(settings: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise UsageError(f"--set {', '.join(unknown)}: not a setting of this trainer"
                         + (f" (model settings: {', '.join(allowed)})" if allowed else ""))


def _shipped(name: str) -> Path:
    """The shipped weights of ``name`` (the checkpoint a stage trains on top of when --init is not given)."""
    from emrepair.models import get_spec

    path = get_spec(name).weights_path()
    if path is None:
        raise InputError(f"no {name} weights found: give --init CHECKPOINT")
    return path
