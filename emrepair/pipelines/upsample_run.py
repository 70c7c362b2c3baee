"""Resumable, shareable writing of an upsample-z output: the run record, the blocks, the workers, the commit.

Follows ``emrepair fix`` (see docs/scaling.md): the output is written under ``.<name>.emrepair-partial`` with a
progress folder ``<output>.emrepair-progress/`` (run.json: fingerprint, repair plan, chunks, provenance; lock;
one done marker per flushed block). Blocks are ``UpsampleBlock``s (whole pairs, whole output chunk slabs).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emrepair.callbacks import ProgressCallback
from emrepair.distributed.plan import RepairRun
from emrepair.pipelines.block_session import (
    OutputSession,
    commit_outputs,
    discard,
    earlier_record,
    outputs_are_run,
    partial_path,
    stamp_run,
)


@dataclass(frozen=True)
class UpsampleJob:
    """What every worker needs to write blocks into the run's outputs (picklable)."""

    input_path: str
    options: Any  # UpsampleOptions
    model_name: str
    device: str
    factor: int
    runs: tuple[RepairRun, ...]
    output: str
    output_temp: str
    masks: str | None
    masks_temp: str | None
    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float] | None
    chunks: tuple[int, int, int]
    progress_path: str
    workers: int = 1
    run_id: str | None = None  # the run's id: a block is marked done only while the progress folder is this run's

    def create_kwargs(self, vol: Any, labels: bool) -> dict[str, Any]:
        """Arguments of ``create_output`` (besides path, overwrite and temp_path) for the output or the masks."""
        return _create_kwargs(vol, labels, self.shape, self.voxel_size, self.chunks)


def _create_kwargs(vol: Any, labels: bool, shape: tuple[int, int, int], voxel_size: Any,
                   chunks: tuple[int, ...] | None) -> dict[str, Any]:
    """What ``create_output`` is told of upsample-z's output (``labels`` False) or masks, whether made or reopened."""
    from emrepair.io.ome_labels import UPSAMPLE_LABELS

    return {"like": vol.info, "shape": shape, "voxel_size": voxel_size, "chunks": chunks, "labels": labels,
            "dtype": np.uint8 if labels else None, "label_values": UPSAMPLE_LABELS if labels else None}


def fingerprint_fields(vol: Any, input_path: str, output_path: str, options: Any, factor: int, model_name: str,
                       weights: str | None, device: str) -> dict[str, Any]:
    """Everything that decides the output's pixels; ``--workers`` and ``--part`` do not."""
    from emrepair.pipelines.provenance import sha256_of

    report = options.report_path
    source = vol.info.path or input_path
    return {
        "command": "upsample-z", "input": str(Path(source).resolve()) if source else "",
        "dataset": vol.info.dataset, "level": options.level, "shape": list(vol.shape), "dtype": str(vol.dtype),
        "output": str(Path(output_path).expanduser().absolute()),
        "masks": str(Path(options.masks_path).expanduser().absolute()) if options.masks_path else None,
        "factor": factor, "repair": options.repair, "sections": options.sections,
        "report_sha256": sha256_of(report) if report else None, "model": model_name, "weights_sha256": weights,
        "tile_size": options.tile_size, "overlap": options.overlap, "blend": options.blend,
        "batch_size": options.batch_size, "device": device.split(":")[0], "precision": options.precision,
        "allow_random_weights": options.allow_random_weights,
    }


def prepare_run(vol: Any, output_path: str, options: Any, fields: dict[str, Any], out_shape: tuple[int, int, int],
                voxel_size: tuple[float, float, float] | None, plan: Callable[[], list[RepairRun]],
                provenance: Callable[[list[RepairRun]], dict[str, Any]]) -> tuple[dict[str, Any], list[RepairRun]]:
    """Create the outputs and the run record once (under the lock), or check and reuse an earlier run's.

    ``plan()`` finds the repair runs (detection) only for a new run; ``provenance(runs)`` makes the record.
    """
    from emrepair.io import create_output
    from emrepair.pipelines.fix import run_from_dict, run_to_dict
    from emrepair.runstate import ProgressDir, progress_dir_for, run_fingerprint

    state = ProgressDir(progress_dir_for(output_path))
    fingerprint = run_fingerprint(fields)
    with state.lock():
        record = earlier_record(state, options, output_path, fingerprint, fields)
        if record is not None:
            return record, [run_from_dict(d) for d in record["runs"]]
        try:
            runs = plan()
            attrs = {"emrepair": provenance(runs)}
            run_id = stamp_run(attrs["emrepair"], fingerprint)
            chunks = None
            for final in filter(None, (output_path, options.masks_path)):
                labels = final != output_path
                writer = create_output(final, overwrite=options.overwrite, temp_path=partial_path(final),
                                       attrs=attrs, **_create_kwargs(vol, labels, out_shape, voxel_size, chunks))
                chunks = writer.chunks  # the masks follow the output's chunking, so blocks fit both
                writer.release()
            record = {"version": 1, "run_id": run_id, "fingerprint": fingerprint, "fields": fields,
                      "chunks": list(chunks or ()),
                      "runs": [run_to_dict(r) for r in runs], "provenance": attrs["emrepair"]}
            state.save(record)
        except BaseException:
            discard(state, [output_path, options.masks_path])  # nothing of this run is worth keeping yet
            raise
        return record, runs


class UpsampleSession(OutputSession):
    """An upsample-z worker: opens the input, the partial outputs and the models once (``loaded`` = (vol,
    upsampler) reuses this process's), and yields ``process(block)``."""

    def _load(self, vol: Any, device: str) -> Any:
        from emrepair.pipelines.upsample_models import load_upsampler

        job = self.job
        return load_upsampler(job.options, job.model_name, device, vol.shape[1:], job.factor,
                              job.options.allow_random_weights)

    def _block_writer(self, stack: contextlib.ExitStack, vol: Any, upsampler: Any, writer: Any,
                      masks: Any | None) -> Callable[[Any], None]:
        from emrepair.pipelines.upsample_stream import BlockStreamer

        job = self.job
        streamer = BlockStreamer(vol, job.factor, list(job.runs), upsampler.repairers,
                                 upsampler.synthesizer(job.factor, vol.shape[0], self.tile_progress),
                                 self.tile_progress, cache_size=6)
        stack.callback(streamer.close)

        def sink(z: int, section: np.ndarray, label: int | np.ndarray) -> None:
            writer.write_section(z, section)
            if masks is not None:
                masks.write_section(z, label if isinstance(label, np.ndarray)
                                    else np.full(section.shape, label, dtype=np.uint8))

        return lambda block: streamer.write(block, sink)


def execute_blocks(job: UpsampleJob, todo: list[Any], options: Any, loaded: tuple[Any, Any],
                   on_done: Callable[[Any], None], tile_progress: ProgressCallback | None) -> None:
    """Run the blocks in this process (reusing ``loaded``) or over ``options.workers`` worker processes."""
    from emrepair.distributed.choice import make_executor
    from emrepair.distributed.executor import SerialExecutor

    if options.workers <= 1:
        SerialExecutor().run(todo, UpsampleSession(job, loaded, tile_progress), on_done)
    else:
        make_executor(options.workers, options.executor).run(todo, UpsampleSession(job), on_done)


def commit_if_complete(job: UpsampleJob, vol: Any, blocks: list[Any], provenance: dict[str, Any]) -> bool:
    """Commit the outputs when every block is done (once, under the lock); True when the run is complete."""
    from emrepair.runstate import ProgressDir, commit_when_complete

    state = ProgressDir(Path(job.progress_path))
    return commit_when_complete(state, [(b.start, b.stop) for b in blocks],
                                lambda: commit_outputs(job, vol, provenance), job.run_id,
                                lambda: outputs_are_run(job))
