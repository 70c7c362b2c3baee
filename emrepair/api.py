"""The Python API: ``emrepair.detection``, ``emrepair.fix``, ``emrepair.upsample_z`` and ``emrepair.train``.

Each takes a NumPy array (z, y, x) or the path of a volume (anything ``emrepair.io.open_volume`` reads).

* With a path, outputs are written where the arguments say, exactly as the command line writes them (the
  ``emrepair`` commands call these functions), and the pipeline's own result is returned (``DetectionReport``,
  ``FixResult``, ``UpsampleResult``, ``TrainResult``).
* With an array, nothing is written where you can see it and the input array is never modified: the work runs
  on a scratch copy and an :class:`ArrayResult` (or, for detect, :class:`DetectResult`) comes back with the
  output array, the masks of every changed pixel, the run's report and the output's provenance.

Example:
    >>> import numpy as np, emrepair
    >>> yy, xx = np.mgrid[:64, :64]
    >>> stack = np.stack([(120 + 60 * np.sin(xx / 5 + z / 3) * np.cos(yy / 7)).astype(np.uint8) for z in range(6)])
    >>> stack[3] = 0                                     # a lost section
    >>> emrepair.detect(stack).report.defective_z()
    [3]
    >>> fixed = emrepair.fix(stack, model="linear", device="cpu")
    >>> fixed.report["synthesized"], int(fixed.masks[3].min()), bool((fixed.array[:3] == stack[:3]).all())
    ([3], 1, True)
    >>> emrepair.fix("stack.h5", "fixed.h5", model="flowunet", masks_path="masks.h5")  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from emrepair.callbacks import ProgressCallback, WarnCallback
from emrepair.errors import UsageError

Volume = np.ndarray | str | Path
Voxel = tuple[float, float, float] | None


@dataclass
class DetectResult:
    """What :func:`detect` found in an array: the report and its uint8 label volume (0 good, 1 missing, 2 fold,
    3 lost region of a partly lost section)."""

    report: Any
    masks: np.ndarray


@dataclass
class ArrayResult:
    """What :func:`fix` or :func:`upsample_z` made of an array.

    Attributes:
        array: the output volume (z, y, x), in the input's dtype.
        masks: uint8 labels of the synthesized pixels (0: the input's own pixels, unchanged).
        report: the run's record, as ``--save-report`` writes it (its input and output are ``None``).
        provenance: what the output's attributes record (model, weights, repaired sections, ...).
        result: the pipeline's result object (``FixResult`` or ``UpsampleResult``).
    """

    array: np.ndarray
    masks: np.ndarray
    report: dict[str, Any]
    provenance: dict[str, Any]
    result: Any


def detect(volume: Volume, *, voxel_size: Voxel = None, config: Any = None, report: str | Path | None = None,
           masks: str | Path | None = None, preview: str | Path | None = None, overwrite: bool = False,
           dataset: str | None = None, level: int | None = None, skip_unreadable: bool = False,
           progress: ProgressCallback | None = None, damage: Any = None) -> Any:
    """Find missing sections, folds and partly lost sections (and, with ``damage``, an
    ``emrepair.detection.DamageConfig``, staining precipitates and regional contrast changes, in ``report.marks``).

    ``config``: an ``emrepair.detection.DetectConfig`` (None: the defaults). With a path, ``report``, ``masks`` and
    ``preview`` write the JSON report, the label volume and PNG previews as ``emrepair detect`` does, and the
    ``DetectionReport`` is returned. With an array, a :class:`DetectResult` (report and label volume).

    Example:
        >>> import numpy as np, emrepair
        >>> yy, xx = np.mgrid[:64, :64]
        >>> stack = np.stack([(120 + 60 * np.sin(xx / 5 + z / 3) * np.cos(yy / 7)).astype(np.uint8) for z in range(6)])
        >>> stack[2] = 0
        >>> found = emrepair.detect(stack)
        >>> found.report.defective_z(), int(found.masks[2].max()), int(found.masks[1].max())
        ([2], 1, 0)
        >>> emrepair.detect("stack.h5", report="report.json", masks="masks.h5")  # doctest: +SKIP
    """
    from emrepair.detection import DetectConfig, detect_volume

    config = config or DetectConfig()
    if not isinstance(volume, np.ndarray):
        from emrepair.pipelines.detect import run_detect

        return run_detect(volume, dataset=dataset, level=level, skip_unreadable=skip_unreadable,
                          report_path=report, masks_path=masks, preview_dir=preview, config=config,
                          overwrite=overwrite, progress=progress, damage=damage)
    _no_paths(report=report, masks=masks, preview=preview)
    from emrepair.io.base import ArrayVolume

    found = detect_volume(ArrayVolume(_checked(volume), voxel_size), config, progress=progress, damage=damage)
    labels = np.stack([found.mask(z, volume.shape[1:]) for z in range(volume.shape[0])])
    return DetectResult(report=found, masks=labels)


def fix(volume: Volume, output: str | Path | None = None, *, options: Any = None, voxel_size: Voxel = None,
        progress: ProgressCallback | None = None, tile_progress: ProgressCallback | None = None,
        warn: WarnCallback | None = None, **settings: Any) -> Any:
    """Repair the damaged sections of a volume from their nearest good neighbours.

    ``settings`` are fields of ``emrepair.pipelines.fix.FixOptions`` (``model``, ``fold_model``, ``sections``,
    ``report_path``, ``masks_path``, ``device``, ``tile_size``, ...), or give a whole ``options``. With a path,
    ``output`` is written as ``emrepair fix -o`` writes it and the ``FixResult`` is returned; with an array an
    :class:`ArrayResult` (``voxel_size`` in nm, z first, helps ``model="auto"`` choose).

    Example:
        >>> import numpy as np, emrepair
        >>> stack = np.stack([np.tile(np.arange(100, 164, dtype=np.uint8), (64, 1)) + 2 * z for z in range(5)])
        >>> stack[2] = 0
        >>> fixed = emrepair.fix(stack, model="linear", fold_model="none", sections=[2], device="cpu")
        >>> fixed.report["synthesized"], int(fixed.array[2, 0, 0]), int(fixed.masks[2].max())
        ([2], 104, 1)
        >>> emrepair.fix("stack.h5", "fixed.h5", masks_path="masks.h5")  # doctest: +SKIP
    """
    from emrepair.pipelines.fix import FixOptions, run_fix

    options = _options(FixOptions, options, settings)
    if not isinstance(volume, np.ndarray):
        return run_fix(str(volume), None if output is None else str(output), options, progress=progress,
                       tile_progress=tile_progress, warn=warn)
    return _on_array(volume, voxel_size, output, options, lambda src, out, opts: run_fix(
        src, out, opts, progress=progress, tile_progress=tile_progress, warn=warn))


def upsample_z(volume: Volume, output: str | Path | None = None, *, options: Any = None, voxel_size: Voxel = None,
               progress: ProgressCallback | None = None, tile_progress: ProgressCallback | None = None,
               detect_progress: ProgressCallback | None = None, warn: WarnCallback | None = None,
               **settings: Any) -> Any:
    """Synthesize ``factor - 1`` sections between every pair of sections (the originals kept bit-identical).

    ``settings`` are fields of ``emrepair.pipelines.upsample.UpsampleOptions`` (``factor`` or ``target_z``,
    ``model``, ``repair``, ``masks_path``, ``device``, ...). With a path, ``output`` is written as
    ``emrepair upsample-z -o`` writes it and the ``UpsampleResult`` is returned; with an array an
    :class:`ArrayResult` whose masks say 9 (``INTERPOLATED_LABEL``) for interpolated sections and 1/2/3
    (missing, fold band, lost region) for the repaired pixels.

    Example:
        >>> import numpy as np, emrepair
        >>> stack = np.stack([np.full((32, 32), v, np.uint8) for v in (100, 140, 180)])
        >>> up = emrepair.upsample_z(stack, factor=2, model="linear", repair=False, device="cpu")
        >>> up.array[:, 0, 0].tolist(), up.masks[:, 0, 0].tolist()
        ([100, 120, 140, 160, 180], [0, 3, 0, 3, 0])
        >>> emrepair.upsample_z("fib.h5", "fib_x4.h5", factor=4)  # doctest: +SKIP
    """
    from emrepair.pipelines.upsample import UpsampleOptions, run_upsample

    options = _options(UpsampleOptions, options, settings)

    def run(src: str, out: str | None, opts: Any) -> Any:
        return run_upsample(src, out, opts, progress=progress, tile_progress=tile_progress,
                            detect_progress=detect_progress, warn=warn)

    if not isinstance(volume, np.ndarray):
        return run(str(volume), None if output is None else str(output), options)
    return _on_array(volume, voxel_size, output, options, run)


def train(stacks: Volume | list[Volume], output: str | Path, *, model: str = "flowunet", stage: str | None = None,
          minutes: float | None = None, interpolator_weights: str | None = None, voxel_size: Voxel = None,
          progress: Any = None, timed_progress: Any = None, warn: WarnCallback | None = None,
          **settings: Any) -> Any:
    """Train ``model`` on ``stacks`` (arrays (z, y, x) or paths, or a list of them) and write the checkpoint
    ``output``, as ``emrepair train`` does.

    ``settings`` are fields of ``emrepair.training.TrainConfig`` (``steps``, ``epochs``, ``batch_size``,
    ``patch_size``, ``lr``, ``device``, ``init``, ``seed``, ``detect``, ``model_options``, ...); ``stage``,
    ``minutes`` and ``interpolator_weights`` choose and drive the timed trainers of sff and reslice
    (``emrepair.training.trainers``). Arrays are trained on from a scratch copy (with ``voxel_size``, if
    given). Returns the ``TrainResult`` (or, for a timed trainer, its ``TimedResult``).

    Example:
        >>> import emrepair
        >>> emrepair.train("stack.h5", "mine.pt", model="flowunet", steps=200)  # doctest: +SKIP
    """
    from emrepair.training import TrainConfig
    from emrepair.training.trainers import run_training

    items = stacks if isinstance(stacks, list) else [stacks]
    with tempfile.TemporaryDirectory(prefix="emrepair-train-") as scratch:
        inputs = [_scratch_copy(item, Path(scratch) / f"stack{i}.h5", voxel_size)
                  if isinstance(item, np.ndarray) else str(item) for i, item in enumerate(items)]
        config = _options(TrainConfig, None, {"batch_size": None, "patch_size": None, "lr": None, **settings,
                                              "inputs": inputs, "output": str(output), "model": model})
        return run_training(config, stage=stage, minutes=minutes, interpolator_weights=interpolator_weights,
                            progress=progress, timed_progress=timed_progress, message=warn)


def _options(cls: type, options: Any, settings: dict[str, Any]) -> Any:
    """``options`` as given, or ``cls(**settings)``; unknown fields are a one-line UsageError."""
    if options is not None:
        if settings:
            raise UsageError(f"give either options or settings, not both ({', '.join(settings)})")
        return options
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UsageError(f"unknown setting(s) {', '.join(unknown)}; {cls.__name__} has {', '.join(sorted(known))}")
    return cls(**settings)


def _checked(array: np.ndarray) -> np.ndarray:
    if array.ndim != 3:
        raise UsageError(f"expected a (z, y, x) array, got shape {array.shape}")
    return array


def _no_paths(**paths: Any) -> None:
    given = [name for name, value in paths.items() if value is not None]
    if given:
        raise UsageError(f"{', '.join(given)}: output paths go with a path input; an array input returns them")


def _scratch_copy(array: np.ndarray, path: Path, voxel_size: Voxel) -> str:
    """Write ``array`` to an HDF5 file in the scratch folder (the input is never touched); return its path."""
    from emrepair.io import create_output
    from emrepair.io.base import ArrayVolume

    source = ArrayVolume(_checked(array), voxel_size)
    with create_output(path, like=source.info) as writer:
        for z in range(array.shape[0]):
            writer.write_section(z, array[z])
    return str(path)


def _on_array(array: np.ndarray, voxel_size: Voxel, output: Any, options: Any, run: Any) -> ArrayResult:
    """Run a blockwise pipeline on a scratch copy of ``array`` and read its output and masks back."""
    from dataclasses import replace

    from emrepair.io import open_volume

    if output is not None:
        raise UsageError("output goes with a path input; an array input returns the output array")
    _no_paths(masks_path=options.masks_path, summary_path=options.summary_path)
    if options.dry_run or options.continue_run or options.part is not None:
        raise UsageError("dry_run, continue_run and part go with path inputs")
    with tempfile.TemporaryDirectory(prefix="emrepair-") as scratch:
        folder = Path(scratch)
        src, out, masks = _scratch_copy(array, folder / "input.h5", voxel_size), folder / "output.h5", folder / "masks.h5"
        result = run(src, str(out), replace(options, masks_path=str(masks)))
        with open_volume(out) as vol, open_volume(masks) as labels:
            repaired = np.stack([vol.read_section(z) for z in range(vol.shape[0])])
            label_array = np.stack([labels.read_section(z) for z in range(labels.shape[0])])
            provenance = dict(vol.info.attrs.get("emrepair") or {})
    report = result.to_dict() | {"input": None, "output": None}
    for key in ("input", "output", "masks"):
        provenance.pop(key, None)
    return ArrayResult(array=repaired, masks=label_array, report=report, provenance=provenance, result=result)
