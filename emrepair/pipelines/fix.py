"""The fix pipeline: synthesize every damaged section from its nearest good neighbours, write a new volume.

The work is cut into chunk-aligned blocks (emrepair.distributed.blocks) written one at a time, so memory does not
grow with the number of sections. Every run keeps a progress folder beside its output (emrepair.runstate) with a
done marker per flushed block: an interrupted run goes on with ``continue_run``, shares of one run (``part``) and
worker processes (``workers``) fill one output, and the last to finish commits it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from emrepair.callbacks import ProgressCallback, WarnCallback
from emrepair.choices import ModelKind
from emrepair.distributed.plan import RepairRun, plan_runs
from emrepair.engine.notes import Notes, resolve_device_noting
from emrepair.errors import OutputError, UsageError
from emrepair.pipelines.block_session import (
    OutputSession,
    already_complete,
    check_run_space,
    commit_outputs,
    discard,
    earlier_record,
    guard_run,
    keeping_finished_blocks,
    outputs_are_run,
    partial_path,
    pending_blocks,
    save_summary,
    stamp_run,
)
from emrepair.pipelines.model_choice import auto_fix_model, default_model_name
from emrepair.pipelines.options import RunOptions, RunResult
from emrepair.pipelines.provenance import base_record, model_label
from emrepair.runstate.rejoin import check_share_targets, commit_when_complete

DEFAULT_FOLD_MODEL = "sff"
# Sections above this many pixels are repaired region by region (REGION_SIZE squares plus context), which keeps
# memory near a few hundred MB for any section size; smaller sections go through the engine whole.
HUGE_SECTION_PIXELS = 6144 * 6144
REGION_SIZE = 4096
# A grid model repairs through a window of ~25 rows per tile, and each tile's overlap and its DIS flow cost a
# whole window: 1024^2 tiles took 80-83 s per missing 1024^2 section on 2 CPU threads, 256^2 tiles 171 s
# (benchmarks/bench_fix_speed.py --tile-size); that run peaked at 1.5 GB resident.
GRID_REPAIR_TILE = 1024


@dataclass
class FixOptions(RunOptions):
    """Everything ``emrepair fix`` can be told, besides input and output (shared fields from RunOptions)."""

    fold_model: str = "auto"
    region_size: int | None = None


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


@dataclass(frozen=True)
class FixJob:
    """What every worker needs to write blocks into the run's outputs (picklable, sent to worker processes)."""

    input_path: str
    options: FixOptions
    model_name: str
    device: str
    output: str
    output_temp: str
    masks: str | None
    masks_temp: str | None
    chunks: tuple[int, int, int]
    progress_path: str
    region_size: int | None
    workers: int = 1
    repaired: tuple[int, ...] = ()  # every section the run repairs (never context for a grid model)
    run_id: str | None = None  # the run's id: a block is marked done only while the progress folder is this run's

    def create_kwargs(self, vol: Any, labels: bool) -> dict[str, Any]:
        """Arguments of ``create_output`` (besides path, overwrite and temp_path) for the output or the masks."""
        return _create_kwargs(vol, labels, self.chunks)


def _create_kwargs(vol: Any, labels: bool, chunks: tuple[int, ...] | None) -> dict[str, Any]:
    """What ``create_output`` is told of fix's output (``labels`` False) or masks, whether made or reopened."""
    from emrepair.io.ome_labels import FIX_LABELS

    return {"like": vol.info, "labels": labels, "chunks": chunks, "label_values": FIX_LABELS if labels else None}


def build_repairers(options: FixOptions, model_name: str, device: str, shape: tuple[int, int],
                    voxel_size: tuple[float, float, float] | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Load the models once and make ``(engine, meta, repairers)``; ``repairers`` maps defect kind -> RunRepairer.

    Every kind uses interpolation between the nearest good sections (``"default"``); with a grid model
    (``reslice``, which needs ``voxel_size`` or takes the stack as isotropic) the default repairer fills each gap
    from several sections on each side instead, and the best interpolation model (the returned engine) serves
    runs at the stack ends. Folded sections use the fold model (``"fold"``) when ``options.fold_model``
    resolves to one.
    """
    from emrepair.distributed.repair import InterpolationRepairer
    from emrepair.engine import TiledInterpolator
    from emrepair.models import load_model, model_kind
    from emrepair.models.registry import require_interpolation

    model, meta = load_model(model_name, device=device)
    grid_model = model if hasattr(model, "fill_grid") else None
    if grid_model is not None:
        model, _ = load_model(default_model_name(), device=device)
    require_interpolation(model, f"--model {model_name}")
    config = options.engine_config(device)
    engine = TiledInterpolator(model, config)
    region = region_size_for(options, shape)
    context = 0
    if region is not None:
        tile = engine.tile_size_for((min(region, shape[0]), min(region, shape[1])))
        context = engine.halo + engine.overlap_for(tile)
    repairers: dict[str, Any] = {"default": InterpolationRepairer(engine, context)}
    if grid_model is not None:
        from emrepair.distributed.grid_repairer import GridRepairer
        from emrepair.engine.grid_repair import grid_ratio
        from emrepair.engine.window import VolumeTiler

        ratio = grid_ratio(voxel_size, 1, grid_model.config.max_factor)
        tiler = VolumeTiler(grid_model, device, tile_size=options.tile_size or GRID_REPAIR_TILE,
                            overlap=options.overlap, blend=options.blend, batch_size=options.batch_size,
                            precision=options.precision)
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


def note_fold_repairer(result: FixResult, repairers: dict[str, Any]) -> None:
    """Record in ``result`` which fold model repairs folded sections, and how far from the band it may change pixels."""
    fold_repairer = repairers.get("fold")
    if fold_repairer is not None and fold_repairer.meta is not None:
        result.fold_model = fold_repairer.meta.name
        result.fold_weights_sha256 = fold_repairer.meta.weights_sha256
        result.fold_reach_px = fold_repairer.reach


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
            model=model_label(meta.name, model_name) if hasattr(meta, "name") else model_name,
            weights_sha256=getattr(meta, "weights_sha256", None), runs=[],
            tiles_per_section=len(engine.plan(vol.shape[1:])),
            memory_estimate_bytes=int(estimate_memory(engine.model, engine.tile_size_for(vol.shape[1:]),
                                                      options.batch_size)),
            device=str(device), dry_run=options.dry_run, warnings=note,
        )
        note_fold_repairer(result, repairers)
        if options.dry_run:
            result.runs = _plan(vol, options)
            _note_one_sided(result.runs, note)
            result.seconds = time.perf_counter() - started
            save_summary(options, result)
            return result
        assert output_path is not None
        _write_repaired(vol, output_path, options, result, engine, repairers, model_name, note,
                        progress, tile_progress)
    result.seconds = time.perf_counter() - started
    save_summary(options, result)
    return result


def _plan(vol: Any, options: FixOptions) -> list[RepairRun]:
    from emrepair.pipelines.sections import repair_targets

    defects, folds = repair_targets(vol, sections=options.sections, report_path=options.report_path,
                                    config=options.detect_config, marks=True,
                                    repair_precipitates=options.repair_precipitates)
    return plan_runs(defects, vol.shape[0], folds)


def _note_one_sided(runs: list[RepairRun], note: WarnCallback) -> None:
    for run in runs:
        if run.one_sided and not fold_repairable(run):
            side = "start" if run.left is None else "end"
            note(f"sections {run.first}-{run.last} touch the {side} of the stack; "
                 f"they are copied from section {run.right if run.left is None else run.left}")


def _check_share_options(options: FixOptions, output_path: str | None) -> None:
    if options.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {options.workers}")
    if output_path is None or options.dry_run:
        return
    check_share_targets((output_path, options.masks_path), options.part, options.workers, options.overwrite)


def _fingerprint_fields(vol: Any, input_path: str, output_path: str, options: FixOptions, model_name: str,
                        weights: str | None, device: str, fold_weights: str | None = None) -> dict[str, Any]:
    """Everything that decides the output's pixels; ``--workers`` and ``--part`` do not."""
    from emrepair.pipelines.provenance import sha256_of

    report = options.report_path
    return {
        "input": str(Path(vol.info.path or input_path).resolve()), "dataset": vol.info.dataset,
        "level": options.level, "shape": list(vol.shape), "dtype": str(vol.dtype),
        "output": str(Path(output_path).expanduser().absolute()),
        "masks": str(Path(options.masks_path).expanduser().absolute()) if options.masks_path else None,
        "sections": options.sections, "report_sha256": sha256_of(report) if report else None,
        "model": model_name, "weights_sha256": weights, "fold_model": fold_weights or options.fold_model,
        "tile_size": options.tile_size,
        "overlap": options.overlap, "blend": options.blend, "batch_size": options.batch_size,
        "device": device.split(":")[0], "precision": options.precision, "region_size": options.region_size,
        **({"detect_config": vars(options.detect_config)} if options.detect_config is not None else {}),
        **({"repair_precipitates": True} if options.repair_precipitates else {}),
    }


def _write_repaired(vol: Any, output_path: str, options: FixOptions, result: FixResult, engine: Any,
                    repairers: dict[str, Any], model_name: str, note: WarnCallback,
                    progress: ProgressCallback | None, tile_progress: ProgressCallback | None) -> None:
    """Hold the output for this run (or find it complete already), then write this process's blocks."""
    from emrepair.runstate import ProgressDir, progress_dir_for, run_fingerprint

    state = ProgressDir(progress_dir_for(output_path))
    fields = _fingerprint_fields(vol, result.input, output_path, options, model_name, result.weights_sha256,
                                 result.device, result.fold_weights_sha256)
    fingerprint = run_fingerprint(fields)
    if already_complete(state, [output_path, options.masks_path], fingerprint, options):
        result.already_complete = True
        return
    with state.writing(output_path, options.part, note):  # one run at a time writes this output
        _write_blocks(vol, output_path, options, result, engine, repairers, model_name, note, progress,
                      tile_progress, state, fingerprint, fields)


def _write_blocks(vol: Any, output_path: str, options: FixOptions, result: FixResult, engine: Any,
                  repairers: dict[str, Any], model_name: str, note: WarnCallback, progress: ProgressCallback | None,
                  tile_progress: ProgressCallback | None, state: Any, fingerprint: str, fields: dict[str, Any]) -> None:
    """Prepare (or rejoin) the run, write this process's blocks, and commit when every block is done."""
    from emrepair.distributed.blocks import plan_blocks

    record, runs = _prepare(vol, output_path, options, result, engine, state, fingerprint, fields)
    result.runs = runs
    _note_one_sided(runs, note)
    chunks = tuple(int(c) for c in record["chunks"])
    job = FixJob(
        input_path=result.input, options=options, model_name=model_name, device=result.device,
        output=output_path, output_temp=str(partial_path(output_path)), masks=options.masks_path,
        masks_temp=str(partial_path(options.masks_path)) if options.masks_path else None,
        chunks=chunks, progress_path=str(state.path), region_size=region_size_for(options, vol.shape[1:]),
        workers=options.workers, repaired=tuple(z for run in runs for z in run.sections),
        run_id=record.get("run_id"),
    )
    blocks = plan_blocks(runs, vol.shape[0], chunks[0])
    mine, todo = pending_blocks(blocks, options.part, state, result)
    total = sum(b.synthesized for b in mine)
    done_count = [total - sum(b.synthesized for b in todo)]

    def on_done(block: Any) -> None:
        done_count[0] += block.synthesized
        if progress is not None and total:
            progress(done_count[0], total)

    with keeping_finished_blocks(state, [job.output, job.masks], options.part):
        _execute(job, todo, options, engine, repairers, vol, on_done, tile_progress)
    result.complete = _commit_if_complete(job, blocks, state, record["provenance"])
    result.blocks_left = 0 if result.complete else len(blocks) - len(state.done())


def _prepare(vol: Any, output_path: str, options: FixOptions, result: FixResult, engine: Any, state: Any,
             fingerprint: str, fields: dict[str, Any]) -> tuple[dict[str, Any], list[RepairRun]]:
    """Create the outputs and the run record once (under the lock), or check and reuse an earlier run's."""
    from emrepair.io import create_output

    with state.lock():
        record = earlier_record(state, options, output_path, fingerprint, fields)
        if record is not None:
            return record, [run_from_dict(d) for d in record["runs"]]
        try:
            runs = _plan(vol, options)
            provenance = _provenance(result, runs, engine, options, vol.shape[1:])
            run_id = stamp_run(provenance, fingerprint)
            chunks = None
            for final in filter(None, (output_path, options.masks_path)):
                labels = final != output_path
                writer = create_output(final, overwrite=options.overwrite, temp_path=partial_path(final),
                                       attrs={"emrepair": provenance}, **_create_kwargs(vol, labels, chunks))
                chunks = writer.chunks  # the label output follows the image's chunking, so blocks fit both
                writer.release()
            record = {"version": 1, "run_id": run_id, "fingerprint": fingerprint, "fields": fields,
                      "chunks": list(chunks or ()),
                      "runs": [run_to_dict(r) for r in runs], "provenance": provenance}
            state.save(record)
        except BaseException:
            discard(state, [output_path, options.masks_path])  # nothing of this run is worth keeping yet
            raise
        return record, runs


def _provenance(result: FixResult, runs: list[RepairRun], engine: Any, options: FixOptions,
                shape: tuple[int, int]) -> dict[str, Any]:
    from emrepair.models.licence import run_weights_terms

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
            "whole section for every synthesized section except fold_repaired_sections, where only pixels within "
            f"{result.fold_reach_px} px of the fold band (runs[].folds: lines and width) may differ from the input; "
            "--masks labels exactly the pixels that differ"),
        "runs": [r.to_dict() for r in runs],
        "engine": {"tile_size": engine.tile_size_for(shape), "blend": options.blend,
                   "device": result.device, "precision": options.precision},
    })
    return provenance


def _execute(job: FixJob, todo: list[Any], options: FixOptions, engine: Any, repairers: dict[str, Any],
             vol: Any, on_done: Callable[[Any], None], tile_progress: ProgressCallback | None) -> None:
    from emrepair.distributed.choice import make_executor
    from emrepair.distributed.executor import SerialExecutor

    if options.workers <= 1:
        # In this process, with the model already loaded.
        session = BlockSession(job, loaded=(vol, repairers), tile_progress=tile_progress)
        SerialExecutor().run(todo, session, on_done)
    else:
        make_executor(options.workers, options.executor).run(todo, BlockSession(job), on_done)


class BlockSession(OutputSession):
    """A fix worker: opens the input, the partial outputs and the models once (``loaded`` = (vol, repairers)
    reuses this process's), and yields ``process(block)``."""

    def _load(self, vol: Any, device: str) -> dict[str, Any]:
        _engine, _meta, repairers = build_repairers(self.job.options, self.job.model_name, device, vol.shape[1:],
                                                    vol.info.voxel_size)
        return repairers

    def _block_writer(self, stack: contextlib.ExitStack, vol: Any, repairers: dict[str, Any], writer: Any,
                      masks: Any | None) -> Callable[[Any], None]:
        from emrepair.distributed.repair import BlockWriter

        job = self.job
        return BlockWriter(vol, writer, masks, repairers, job.chunks[0], job.region_size, self.tile_progress,
                           frozenset(job.repaired), repair_precipitates=job.options.repair_precipitates).write


def _commit_if_complete(job: FixJob, blocks: list[Any], state: Any, provenance: dict[str, Any]) -> bool:
    """Commit the outputs when every block is done (once, under the lock); True when the run is complete."""
    from emrepair.io import open_volume

    def commit() -> None:
        opts = job.options
        with open_volume(job.input_path, dataset=opts.dataset, level=opts.level,
                         skip_unreadable=opts.skip_unreadable) as vol:
            commit_outputs(job, vol, provenance)

    return commit_when_complete(state, [(b.start, b.stop) for b in blocks], commit, job.run_id,
                                lambda: outputs_are_run(job))


def run_to_dict(run: RepairRun) -> dict[str, Any]:
    """Compact JSON form of a run for the run record."""
    return {"first": run.first, "last": run.last, "left": run.left, "right": run.right,
            "kinds": {str(z): k for z, k in run.kinds.items()},
            "folds": {str(z): g for z, g in run.folds.items()}}


def run_from_dict(data: dict[str, Any]) -> RepairRun:
    """Inverse of ``run_to_dict``."""
    return RepairRun(int(data["first"]), int(data["last"]), data["left"], data["right"],
                     {int(z): k for z, k in data["kinds"].items()},
                     {int(z): g for z, g in data.get("folds", {}).items()})


__all__ = ["FixJob", "FixOptions", "FixResult", "BlockSession", "build_repairers", "default_model_name",
           "partial_path", "run_fix"]
