"""The fix pipeline: synthesize every damaged section from its nearest good neighbours, write a new volume.

The work is cut into chunk-aligned blocks (emrepair.distributed.blocks) written one at a time, so memory does not
grow with the number of sections. ``FixRun`` is the pipeline's blockwise run (``emrepair.blockwise``): an
interrupted run goes on with ``continue_run``, shares of one run (``part``) and worker processes (``workers``)
fill one output, and the last to finish commits it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emrepair.blockwise import BlockJob, BlockwiseRun, partial_path
from emrepair.blockwise.job import WriteBlock
from emrepair.blockwise.outputs import check_run_space, guard_run, save_summary
from emrepair.callbacks import ProgressCallback, WarnCallback
from emrepair.distributed.blocks import Block
from emrepair.distributed.plan import RepairRun, plan_runs
from emrepair.distributed.repair import RunRepairer
from emrepair.engine import TiledInterpolator
from emrepair.engine.notes import Notes, resolve_device_noting
from emrepair.errors import OutputError, UsageError
from emrepair.io.base import Volume
from emrepair.pipelines.model_choice import auto_fix_model, default_model_name
from emrepair.pipelines.options import FixOptions, RunResult
from emrepair.pipelines.provenance import base_record, model_label
from emrepair.pipelines.repairers import (
    build_repairers,
    fold_repaired_sections,
    note_fold_repairer,
    note_one_sided,
    region_size_for,
)
from emrepair.runstate.rejoin import check_share_targets


@dataclass(kw_only=True)
class FixResult(RunResult):
    """What a fix run did (or, for a dry run, would do)."""

    shape: tuple[int, int, int]
    fold_model: str | None = None
    fold_weights_sha256: str | None = None
    fold_reach_px: int | None = None
    already_complete: bool = False  # --continue / --part found the output finished by this very run

    synthesized = RunResult.repaired_sections  # every section whose pixels were synthesized

    @property
    def fold_repaired(self) -> list[int]:
        """Folded sections repaired by the fold model, which keeps their pixels away from the band."""
        return fold_repaired_sections(self.runs, self.fold_model)

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the run, as written by ``--save-report``."""
        return {
            "version": 1, "input": self.input, "output": self.output, "shape": list(self.shape),
            "model": self.model, "weights_sha256": self.weights_sha256, "device": self.device,
            "fold_model": self.fold_model, "fold_weights_sha256": self.fold_weights_sha256,
            "dry_run": self.dry_run, "synthesized": self.synthesized, "fold_repaired": self.fold_repaired,
            "runs": [r.to_dict() for r in self.runs],
            "tiles_per_section": self.tiles_per_section, "memory_estimate_bytes": self.memory_estimate_bytes,
            "seconds": round(self.seconds, 3), "warnings": self.warnings, "complete": self.complete,
            "already_complete": self.already_complete, "blocks": self.blocks_dict(),
        }



@dataclass(frozen=True, kw_only=True)
class FixJob(BlockJob):
    """What every fix worker needs: the blockwise job, the xy region size and the sections the run repairs."""

    region_size: int | None
    repaired: tuple[int, ...] = ()  # every section the run repairs (never context for a grid model)

    def create_kwargs(self, vol: Volume, labels: bool) -> dict[str, Any]:
        """Arguments of ``create_output`` (besides path, overwrite and temp_path) for the output or the masks."""
        return _create_kwargs(vol, labels, self.chunks)

    def load_models(self, vol: Volume, device: str) -> dict[str, RunRepairer]:
        """Fix's repairers (``build_repairers``), loaded once per worker."""
        _engine, _meta, repairers = build_repairers(self.options, self.model_name, device, vol.shape[1:],
                                                    vol.info.voxel_size)
        return repairers

    def block_writer(self, stack: contextlib.ExitStack, vol: Volume, models: dict[str, RunRepairer], writer: Any,
                     masks: Any | None, tile_progress: ProgressCallback | None) -> WriteBlock:
        """``BlockWriter.write`` over the repairers: good sections copied, runs repaired slab by slab."""
        from emrepair.distributed.repair import BlockWriter

        return BlockWriter(vol, writer, masks, models, self.chunks[0], self.region_size, tile_progress,
                           frozenset(self.repaired), repair_precipitates=self.options.repair_precipitates).write


def _create_kwargs(vol: Volume, labels: bool, chunks: tuple[int, ...] | None) -> dict[str, Any]:
    """What ``create_output`` is told of fix's output (``labels`` False) or masks, whether made or reopened."""
    from emrepair.io.ome_labels import FIX_LABELS

    return {"like": vol.info, "labels": labels, "chunks": chunks, "label_values": FIX_LABELS if labels else None}


def run_fix(
    input_path: str,
    output_path: str | None,
    options: FixOptions,
    *,
    progress: ProgressCallback | None = None,
    tile_progress: ProgressCallback | None = None,
    warn: WarnCallback | None = None,
) -> FixResult:
    """Repair the defective sections of ``input_path`` into a new volume at ``output_path``.

    Good sections are copied bit-identically; each run of defective sections is synthesized at t = j/(k+1)
    between its nearest good neighbours (copied from the single neighbour at a stack end, with a warning).

    ``progress(done, total)`` counts synthesized sections, ``tile_progress`` the tiles of the section pair at work.
    An interrupted run (KeyboardInterrupt, OutputError such as a full disk) keeps its partial output for
    ``continue_run``; other errors remove it (unless ``part`` is set: other shares may be writing).
    """
    from emrepair.engine import estimate_memory
    from emrepair.io import open_volume

    started = time.perf_counter()
    note = Notes(warn)

    if not options.dry_run and not output_path:
        raise OutputError("an output path is required (-o OUT), unless --dry-run")
    _check_share_options(options, output_path)
    with open_volume(input_path, dataset=options.dataset, level=options.level,
                     skip_unreadable=options.skip_unreadable) as vol:
        guard_run([input_path, vol.info.path], output_path, options)  # before any pixel is read
        if output_path and not options.dry_run:
            check_run_space(vol, output_path, options, tuple(vol.shape))  # before detection and model loading
        device = resolve_device_noting(options.device, note)
        model_name = auto_fix_model(options.model, vol.info.voxel_size, device.type, note)
        # With worker processes the model here only answers questions (tiles, memory): keep it off the GPU,
        # which also keeps CUDA uninitialised in a parent whose workers may be forked.
        here = "cpu" if options.workers > 1 else str(device)
        engine, meta, repairers = build_repairers(options, model_name, here, vol.shape[1:], vol.info.voxel_size)
        result = FixResult(
            input=str(input_path), output=str(output_path) if output_path else None, shape=vol.shape,
            model=model_label(meta.name, model_name), weights_sha256=meta.weights_sha256, runs=[],
            tiles_per_section=len(engine.plan(vol.shape[1:])),
            memory_estimate_bytes=int(estimate_memory(engine.model, engine.tile_size_for(vol.shape[1:]),
                                                      options.batch_size)),
            device=str(device), dry_run=options.dry_run, warnings=note,
        )
        note_fold_repairer(result, repairers)
        if options.dry_run:
            result.runs = _plan(vol, options)
            note_one_sided(result.runs, note)
            result.seconds = time.perf_counter() - started
            save_summary(options, result)
            return result
        assert output_path is not None
        FixRun(vol, output_path, options, result, repairers, note, progress, tile_progress,
               engine=engine, model_name=model_name).write()
    result.seconds = time.perf_counter() - started
    save_summary(options, result)
    return result


def _plan(vol: Volume, options: FixOptions) -> list[RepairRun]:
    from emrepair.pipelines.sections import repair_targets

    defects, folds = repair_targets(vol, sections=options.sections, report_path=options.report_path,
                                    config=options.detect_config, marks=True,
                                    repair_precipitates=options.repair_precipitates)
    return plan_runs(defects, vol.shape[0], folds)


def _check_share_options(options: FixOptions, output_path: str | None) -> None:
    if options.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {options.workers}")
    if output_path is None or options.dry_run:
        return
    check_share_targets((output_path, options.masks_path), options.part, options.workers, options.overwrite)


class FixRun(BlockwiseRun):
    """fix as a blockwise run: blocks of whole repair runs on output chunk slabs, written by ``FixJob``."""

    options: FixOptions
    result: FixResult

    def __init__(self, *args: Any, engine: TiledInterpolator, model_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine, self.model_name = engine, model_name

    def fingerprint_fields(self) -> dict[str, Any]:
        """Everything that decides the output's pixels; ``--workers`` and ``--part`` do not."""
        from emrepair.pipelines.provenance import sha256_of

        vol, options, result = self.vol, self.options, self.result
        report = options.report_path
        return {
            "input": str(Path(vol.info.path or result.input).resolve()), "dataset": vol.info.dataset,
            "level": options.level, "shape": list(vol.shape), "dtype": str(vol.dtype),
            "output": str(Path(self.output).expanduser().absolute()),
            "masks": str(Path(options.masks_path).expanduser().absolute()) if options.masks_path else None,
            "sections": options.sections, "report_sha256": sha256_of(report) if report else None,
            "model": self.model_name, "weights_sha256": result.weights_sha256,
            "fold_model": result.fold_weights_sha256 or options.fold_model,
            "tile_size": options.tile_size, "overlap": options.overlap, "blend": options.blend,
            "batch_size": options.batch_size, "device": result.device.split(":")[0], "precision": options.precision,
            "region_size": options.region_size,
            **({"detect_config": vars(options.detect_config)} if options.detect_config is not None else {}),
            **({"repair_precipitates": True} if options.repair_precipitates else {}),
        }

    def plan(self) -> list[RepairRun]:
        """Fix's repair runs: the report's, ``--sections`` or a fresh detection (looking for marks too)."""
        return _plan(self.vol, self.options)

    def provenance(self, runs: list[RepairRun]) -> dict[str, Any]:
        """What fix's outputs say of their run: models, weights, synthesized sections and pixels, engine."""
        from emrepair.models.licence import run_weights_terms

        result, options, shape = self.result, self.options, self.vol.shape[1:]
        provenance = base_record("fix", result.input)
        fold_repaired = fold_repaired_sections(runs, result.fold_model)
        provenance.update({
            "model": result.model, "weights_sha256": result.weights_sha256,
            "fold_model": result.fold_model, "fold_weights_sha256": result.fold_weights_sha256,
            "weights_licence": run_weights_terms((options.model, result.weights_sha256),
                                                 (options.fold_model, result.fold_weights_sha256)),
            "synthesized_sections": [z for run in runs for z in run.sections],
            "fold_repaired_sections": fold_repaired,
            "synthesized_pixels": (
                "whole section for every synthesized section" if not fold_repaired else
                "whole section for every synthesized section except fold_repaired_sections, where only pixels "
                f"within {result.fold_reach_px} px of the fold band (runs[].folds: lines and width) may differ from "
                "the input; --masks labels exactly the pixels that differ"),
            "runs": [r.to_dict() for r in runs],
            "engine": {"tile_size": self.engine.tile_size_for(shape), "blend": options.blend,
                       "device": result.device, "precision": options.precision},
        })
        return provenance

    def create_kwargs(self, labels: bool, chunks: tuple[int, ...] | None) -> dict[str, Any]:
        """What ``create_output`` is told of the output or the masks."""
        return _create_kwargs(self.vol, labels, chunks)

    def blocks(self, runs: list[RepairRun], chunk_z: int) -> list[Block]:  # type: ignore[override]
        """Chunk-aligned blocks never cut inside a repair run (``plan_blocks``)."""
        from emrepair.distributed.blocks import plan_blocks

        return plan_blocks(runs, self.vol.shape[0], chunk_z)

    def work_of(self, block: Block) -> int:  # type: ignore[override]
        """Progress counts synthesized sections."""
        return int(block.synthesized)

    def rejoined(self, runs: list[RepairRun]) -> None:
        """Keep the runs and say which are copied from their one neighbour."""
        super().rejoined(runs)
        note_one_sided(runs, self.note)

    def job(self, record: dict[str, Any], runs: list[RepairRun], progress_path: str) -> FixJob:
        """What every fix worker needs."""
        options, output = self.options, self.output
        return FixJob(
            input_path=self.result.input, options=options, model_name=self.model_name, device=self.result.device,
            output=output, output_temp=str(partial_path(output)), masks=options.masks_path,
            masks_temp=str(partial_path(options.masks_path)) if options.masks_path else None,
            chunks=tuple(int(c) for c in record["chunks"]), progress_path=progress_path,  # type: ignore[arg-type]
            region_size=region_size_for(options, self.vol.shape[1:]), workers=options.workers,
            repaired=tuple(z for run in runs for z in run.sections), run_id=record.get("run_id"),
        )


__all__ = ["FixJob", "FixOptions", "FixResult", "FixRun", "build_repairers", "default_model_name",
           "partial_path", "run_fix"]
