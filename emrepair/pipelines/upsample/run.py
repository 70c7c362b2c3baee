"""upsample-z as a blockwise run (``emrepair.blockwise``): whole pairs on whole output chunk slabs
(``UpsampleBlock``), written by ``UpsampleJob`` with the models loaded once per worker.

Follows ``emrepair fix`` (see docs/scaling.md): the output is written under ``.<name>.emrepair-partial`` with a
progress folder ``<output>.emrepair-progress/`` (run.json: fingerprint, repair plan, chunks, provenance; lock;
one done marker per flushed block).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emrepair.blockwise import BlockJob, BlockwiseRun, partial_path
from emrepair.blockwise.job import WriteBlock
from emrepair.callbacks import ProgressCallback
from emrepair.distributed.plan import RepairRun
from emrepair.io.base import Volume
from emrepair.pipelines.upsample.plan import UpsampleBlock, plan_upsample_blocks
from emrepair.pipelines.upsample.upsampler import Upsampler


@dataclass(frozen=True, kw_only=True)
class UpsampleJob(BlockJob):
    """What every upsample-z worker needs: the blockwise job, the factor, the repair runs and the output's shape."""

    factor: int
    runs: tuple[RepairRun, ...]
    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float] | None

    def create_kwargs(self, vol: Volume, labels: bool) -> dict[str, Any]:
        """Arguments of ``create_output`` (besides path, overwrite and temp_path) for the output or the masks."""
        return _create_kwargs(vol, labels, self.shape, self.voxel_size, self.chunks)

    def load_models(self, vol: Volume, device: str) -> Upsampler:
        """The run's ``Upsampler``, loaded once per worker."""
        from emrepair.pipelines.upsample.upsampler import load_upsampler

        return load_upsampler(self.options, self.model_name, device, vol.shape[1:], self.factor,
                              self.options.allow_random_weights)

    def block_writer(self, stack: contextlib.ExitStack, vol: Volume, models: Upsampler, writer: Any, masks: Any | None,
                     tile_progress: ProgressCallback | None) -> WriteBlock:
        """``BlockStreamer.write`` into the output (and the masks), its cached sections closed with the worker."""
        from emrepair.pipelines.upsample.stream import BlockStreamer

        streamer = BlockStreamer(vol, self.factor, list(self.runs), models.repairers,
                                 models.synthesizer(self.factor, vol.shape[0], tile_progress),
                                 tile_progress, cache_size=6)
        stack.callback(streamer.close)

        def sink(z: int, section: np.ndarray, label: int | np.ndarray) -> None:
            writer.write_section(z, section)
            if masks is not None:
                masks.write_section(z, label if isinstance(label, np.ndarray)
                                    else np.full(section.shape, label, dtype=np.uint8))

        return lambda block: streamer.write(block, sink)


def _create_kwargs(vol: Volume, labels: bool, shape: tuple[int, int, int], voxel_size: Any,
                   chunks: tuple[int, ...] | None) -> dict[str, Any]:
    """What ``create_output`` is told of upsample-z's output (``labels`` False) or masks, whether made or reopened."""
    from emrepair.io.ome_labels import UPSAMPLE_LABELS

    return {"like": vol.info, "shape": shape, "voxel_size": voxel_size, "chunks": chunks, "labels": labels,
            "dtype": np.uint8 if labels else None, "label_values": UPSAMPLE_LABELS if labels else None}


class UpsampleRun(BlockwiseRun):
    """upsample-z as a blockwise run; ``plan()`` finds the repair runs (detection) only for a new run, and
    ``make_provenance(runs)`` makes its record."""

    report_start = True

    def __init__(self, *args: Any, model_name: str, plan: Callable[[], list[RepairRun]],
                 make_provenance: Callable[[list[RepairRun]], dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_name, self._plan, self._provenance = model_name, plan, make_provenance

    def fingerprint_fields(self) -> dict[str, Any]:
        """Everything that decides the output's pixels; ``--workers`` and ``--part`` do not."""
        from emrepair.pipelines.provenance import sha256_of

        vol, options, result = self.vol, self.options, self.result
        report = options.report_path
        source = vol.info.path or result.input
        return {
            "command": "upsample-z", "input": str(Path(source).resolve()) if source else "",
            "dataset": vol.info.dataset, "level": options.level, "shape": list(vol.shape), "dtype": str(vol.dtype),
            "output": str(Path(self.output).expanduser().absolute()),
            "masks": str(Path(options.masks_path).expanduser().absolute()) if options.masks_path else None,
            "factor": result.factor.factor, "repair": options.repair, "sections": options.sections,
            "report_sha256": sha256_of(report) if report else None, "model": self.model_name,
            "weights_sha256": result.weights_sha256, "tile_size": options.tile_size, "overlap": options.overlap,
            "blend": options.blend, "batch_size": options.batch_size, "device": result.device.split(":")[0],
            "precision": options.precision, "allow_random_weights": options.allow_random_weights,
        }

    def plan(self) -> list[RepairRun]:
        """The repair step's runs (none without ``repair``)."""
        return self._plan()

    def provenance(self, runs: list[RepairRun]) -> dict[str, Any]:
        """What upsample-z's outputs say of their run."""
        self.result.runs = runs
        return self._provenance(runs)

    def create_kwargs(self, labels: bool, chunks: tuple[int, ...] | None) -> dict[str, Any]:
        """What ``create_output`` is told of the output or the masks."""
        return _create_kwargs(self.vol, labels, self.result.output_shape, self.result.output_voxel_size, chunks)

    def blocks(self, runs: list[RepairRun], chunk_z: int) -> list[UpsampleBlock]:  # type: ignore[override]
        """Output blocks cut at multiples of lcm(factor, chunk depth)."""
        return plan_upsample_blocks(self.vol.shape[0], self.result.factor.factor, chunk_z)

    def work_of(self, block: UpsampleBlock) -> int:  # type: ignore[override]
        """Progress counts section pairs."""
        return len(block.pairs)

    def reports(self, block: UpsampleBlock, total: int) -> bool:  # type: ignore[override]
        """Progress moves only with blocks that hold pairs."""
        return bool(block.pairs)

    def job(self, record: dict[str, Any], runs: list[RepairRun], progress_path: str) -> UpsampleJob:
        """What every upsample-z worker needs."""
        options, result, output = self.options, self.result, self.output
        return UpsampleJob(
            input_path=self.vol.info.path or result.input, options=options, model_name=self.model_name,
            device=result.device, factor=result.factor.factor, runs=tuple(runs), output=output,
            output_temp=str(partial_path(output)), masks=options.masks_path,
            masks_temp=str(partial_path(options.masks_path)) if options.masks_path else None,
            shape=result.output_shape, voxel_size=result.output_voxel_size,
            chunks=tuple(int(c) for c in record["chunks"]), progress_path=progress_path,  # type: ignore[arg-type]
            workers=options.workers, run_id=record.get("run_id"),
        )
