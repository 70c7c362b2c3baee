"""The upsample-z command: repair defective sections, then synthesize factor - 1 sections between each pair.

Original (or repaired) section z lands at output z' = factor * z, bit-identical for good sections; the output has
(Z - 1) * factor + 1 sections and its z voxel size is the input's divided by the factor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from emrepair.callbacks import ProgressCallback, WarnCallback
from emrepair.distributed.plan import RepairRun, plan_runs
from emrepair.distributed.region_repair import SEAM_PX
from emrepair.engine.notes import Notes, resolve_device_noting
from emrepair.errors import OutputError, UsageError
from emrepair.io.base import Volume
from emrepair.pipelines.options import RunOptions
from emrepair.pipelines.provenance import base_record, model_label
from emrepair.pipelines.upsample.plan import (
    INTERPOLATED_LABEL,
    check_depth,
    output_depth,
    output_voxel_size,
    positions,
    resolve_factor,
)
from emrepair.pipelines.upsample.result import UpsampleResult


@dataclass
class UpsampleOptions(RunOptions):
    """Everything ``emrepair upsample-z`` can be told, besides input and output (shared fields from RunOptions).

    Exactly one of ``factor`` and ``target_z`` (nm) must be set. ``repair`` runs the fix step first
    (sections from ``sections``, ``report_path`` or a fresh detection); ``repair=False`` uses sections as they are.
    """

    factor: int | None = None
    target_z: float | None = None
    repair: bool = True
    allow_random_weights: bool = False  # learned models without weights start untrained (benchmark timing only)


def run_upsample(
    input_path: str,
    output_path: str | None,
    options: UpsampleOptions,
    *,
    progress: ProgressCallback | None = None,
    tile_progress: ProgressCallback | None = None,
    detect_progress: ProgressCallback | None = None,
    warn: WarnCallback | None = None,
) -> UpsampleResult:
    """Upsample ``input_path`` in z into a new volume at ``output_path`` (see :func:`upsample_volume`)."""
    from emrepair.io import open_volume

    if not options.dry_run and not output_path:
        raise OutputError("an output path is required (-o OUT), unless --dry-run")
    with open_volume(input_path, dataset=options.dataset, level=options.level,
                     skip_unreadable=options.skip_unreadable) as vol:
        return upsample_volume(vol, output_path, options, input_name=str(input_path), progress=progress,
                               tile_progress=tile_progress, detect_progress=detect_progress, warn=warn)


def upsample_volume(
    vol: Volume,
    output_path: str | None,
    options: UpsampleOptions,
    *,
    input_name: str | None = None,
    progress: ProgressCallback | None = None,
    tile_progress: ProgressCallback | None = None,
    detect_progress: ProgressCallback | None = None,
    warn: WarnCallback | None = None,
) -> UpsampleResult:
    """Repair (unless ``options.repair`` is false) and upsample an open volume, streaming section pairs.

    ``progress(done, total)`` counts section pairs, ``tile_progress`` the tiles of the pair at work,
    ``detect_progress`` the detection pass (when the repair step detects). Warnings go to ``warn``.

    The output is written in blocks with done markers (see ``upsample.run``): ``options.continue_run`` finishes an
    interrupted run, ``options.part`` writes one share, ``options.workers`` spreads blocks over processes.

    Raises:
        InputError: fewer than 2 sections, or ``--target-z`` without a known voxel size.
        UsageError: a bad factor or target, conflicting repair sources, an unknown model, a volume model without
            the factor, shares/workers with an .h5/.tif output, an unfinished run with other arguments.
        OutputError: no output path, an output that exists (without overwrite) or is the input, an unfinished
            run without ``continue_run``.
    """
    from emrepair.blockwise.outputs import guard_run, save_summary
    from emrepair.pipelines.model_choice import default_upsample_model
    from emrepair.pipelines.sections import repair_targets
    from emrepair.pipelines.upsample.plan import isotropy_note
    from emrepair.pipelines.upsample.upsampler import estimate_seconds, load_upsampler
    from emrepair.runstate import check_share_targets

    started = time.perf_counter()
    note = Notes(warn)

    depth, height, width = vol.shape
    check_depth(depth)
    factor = resolve_factor(options.factor, options.target_z, vol.info.voxel_size)
    isotropic = isotropy_note(vol.info.voxel_size, factor.factor)
    if isotropic:
        note(isotropic)
    name = input_name if input_name is not None else vol.info.path
    if not options.dry_run:
        if not output_path:
            raise OutputError("an output path is required (-o OUT), unless --dry-run")
        check_share_targets((output_path, options.masks_path), options.part, options.workers, options.overwrite)
        if options.workers > 1 and not vol.info.path:
            raise UsageError("--workers needs an input volume on disk (workers open it themselves)")
    # Refuse an existing output, the input itself, overlapping outputs, a disk too small... before the slow
    # detection and model loading.
    guard_run([vol.info.path, input_name], output_path, options)
    out_shape = (output_depth(depth, factor.factor), height, width)
    if not options.dry_run:
        from emrepair.blockwise.outputs import check_run_space

        assert output_path is not None
        check_run_space(vol, output_path, options, out_shape)
    device = resolve_device_noting(options.device, note)
    model_name = default_upsample_model(vol.info.voxel_size, factor.factor) if options.model == "auto" \
        else options.model
    # With worker processes the models here only answer questions (tiles, memory): keep them off the GPU.
    here = "cpu" if options.workers > 1 else str(device)
    upsampler = load_upsampler(options, model_name, here, (height, width), factor.factor,
                               options.allow_random_weights)
    result = UpsampleResult(
        input=name, output=str(output_path) if output_path else None, input_shape=(depth, height, width),
        output_shape=out_shape, factor=factor, input_voxel_size=vol.info.voxel_size,
        output_voxel_size=output_voxel_size(vol.info.voxel_size, factor.factor),
        model=model_label(upsampler.meta.name, model_name),
        weights_sha256=upsampler.meta.weights_sha256, runs=[],
        tiles_per_section=upsampler.tiles_per_section((height, width)),
        memory_estimate_bytes=upsampler.memory_estimate((height, width), options.batch_size),
        host_memory_bytes=host_memory_bytes((height, width), vol.dtype, factor.factor),
        device=str(device), dry_run=options.dry_run, warnings=note,
        repair_model=upsampler.repair_model if upsampler.volume is not None else None,
    )

    def plan() -> list[RepairRun]:
        if not options.repair:
            return []
        defects, folds = repair_targets(vol, sections=options.sections, report_path=options.report_path,
                                        progress=detect_progress)
        return plan_runs(defects, depth, folds)

    if options.dry_run:
        result.runs = plan()
        result.estimated_seconds = estimate_seconds(vol, upsampler, factor.factor)
    else:
        assert output_path is not None
        from emrepair.pipelines.upsample.run import UpsampleRun

        UpsampleRun(vol, output_path, options, result, upsampler, note, progress, tile_progress,
                    model_name=model_name, plan=plan,
                    make_provenance=lambda runs: _provenance(result, upsampler, options)).write()
    for run in result.runs:
        if run.one_sided:
            source = run.right if run.left is None else run.left
            note(f"sections {run.first}-{run.last} are at an end of the stack; repaired as copies of {source}")
    result.seconds = time.perf_counter() - started
    save_summary(options, result)
    return result


def host_memory_bytes(shape: tuple[int, int], dtype: np.dtype, factor: int) -> int:
    """Rough host memory of one pair step: the pair, three cached input sections and the synthesized sections in
    the stored dtype, their
    float32 copies for the model, and the engine's float32 accumulators (one per t, plus the weights)."""
    pixels = int(shape[0]) * int(shape[1])
    stored = np.dtype(dtype).itemsize
    return pixels * ((2 + 3 + factor - 1) * stored + 2 * 4 + factor * 4 + (factor - 1) * 4)


def _provenance(result: UpsampleResult, upsampler: Any, options: UpsampleOptions) -> dict[str, Any]:
    from emrepair.models.licence import run_weights_terms

    record = base_record("upsample-z", result.input)
    record.update({
        "model": result.model, "weights_sha256": result.weights_sha256,
        "weights_licence": run_weights_terms((options.model, result.weights_sha256)),
        "factor": result.factor.factor, "t": [round(t, 6) for t in positions(result.factor.factor)],
        "input_shape": list(result.input_shape), "input_voxel_size": (
            list(result.input_voxel_size) if result.input_voxel_size is not None else None),
        "original_sections": f"input z -> output z * {result.factor.factor}",
        "interpolated_sections": f"every output z with z % {result.factor.factor} != 0 "
                                 f"({result.interpolated_count} sections)",
        "repaired_sections": result.repaired_output,
        "region_repaired_sections": result.region_repaired_output,
        "region_repaired_input_sections": result.region_repaired_input,
        "synthesized_pixels": (
            "whole section for every interpolated section and every repaired section, except "
            "region_repaired_sections (partly lost input sections), where only the lost region (repair_runs[].folds:"
            f" region) and a seam of at most {SEAM_PX} px around it are synthesized and every pixel farther from it "
            "is the input's own; --masks labels exactly the repaired pixels that differ from the input"),
        "repair_runs": [r.to_dict() for r in result.runs],
        "repair_model": result.repair_model,
        "engine": {"tile_size": upsampler.tile_size_for(result.input_shape[1:]), "blend": options.blend,
                   "device": result.device, "precision": options.precision},
    })
    return record


__all__ = ["INTERPOLATED_LABEL", "UpsampleOptions", "UpsampleResult", "host_memory_bytes", "run_upsample",
           "upsample_volume"]
