"""What every worker of a blockwise run needs (``BlockJob``), and the worker session built from it (``BlockSession``):
the input, the partial outputs and the models opened once per worker, then ``process(block)`` for each block.

A pipeline's job subclass states how its outputs are (re)opened (``create_kwargs``), which models it loads
(``load_models``, once per worker) and how one block is written with them (``block_writer``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from emrepair.callbacks import ProgressCallback
from emrepair.distributed.executor import WorkerSession
from emrepair.distributed.plan import RepairRun
from emrepair.io.base import Volume


class RunSettings(Protocol):
    """What a blockwise run reads of its options (``pipelines.options.RunOptions`` has them all)."""

    model: str
    report_path: str | None
    masks_path: str | None
    summary_path: str | None
    dataset: str | None
    level: int | None
    overwrite: bool
    dry_run: bool
    continue_run: bool
    part: tuple[int, int] | None
    workers: int
    executor: str
    skip_unreadable: bool


class RunOutcome(Protocol):
    """What a blockwise run tells its result (``pipelines.options.RunResult`` and its subclasses)."""

    output: str | None
    runs: list[RepairRun]
    already_complete: bool
    blocks_total: int
    blocks_skipped: int
    blocks_left: int
    complete: bool

    def to_dict(self) -> dict[str, Any]: ...


class BlockSpan(Protocol):
    """A block of a blockwise run: output sections ``start..stop-1`` (``distributed.blocks.Block``,
    ``UpsampleBlock``)."""

    @property
    def start(self) -> int: ...

    @property
    def stop(self) -> int: ...


WriteBlock = Callable[[Any], None]


@dataclass(frozen=True, kw_only=True)
class BlockJob:
    """What every worker needs to write blocks into the run's outputs (picklable, sent to worker processes).

    Attributes:
        input_path: the input volume, opened by each worker (``options`` say its dataset, level...).
        options: the run's options (a ``RunOptions``).
        model_name: the model the run was asked for (resolved, not ``auto``).
        device: the device of the run (``worker_device`` spreads workers over CUDA devices).
        output, masks: the final outputs (``masks`` None without ``--masks``).
        output_temp, masks_temp: their partial copies (``partial_path``).
        chunks: the output's chunk shape; blocks own whole z-slabs of it.
        progress_path: the run's progress folder.
        workers: how many processes write the run.
        run_id: the run's id: a block is marked done only while the progress folder is this run's.
    """

    input_path: str
    options: Any  # the pipeline's options: RunSettings and the pipeline's own fields
    model_name: str
    device: str
    output: str
    output_temp: str
    masks: str | None
    masks_temp: str | None
    chunks: tuple[int, int, int]
    progress_path: str
    workers: int = 1
    run_id: str | None = None

    def create_kwargs(self, vol: Volume, labels: bool) -> dict[str, Any]:
        """Arguments of ``create_output`` (besides path, overwrite and temp_path) for the output or the masks."""
        raise NotImplementedError

    def load_models(self, vol: Volume, device: str) -> Any:
        """The models a worker writes blocks with, loaded once per worker on ``device``."""
        raise NotImplementedError

    def block_writer(self, stack: contextlib.ExitStack, vol: Volume, models: Any, writer: Any, masks: Any | None,
                     tile_progress: ProgressCallback | None) -> WriteBlock:
        """A callable writing one block into ``writer`` (and ``masks``); ``stack`` takes what must be closed with
        the worker."""
        raise NotImplementedError


def worker_device(job: BlockJob, worker_id: int) -> str:
    """The device of a worker: ``cuda:{worker_id % n_gpus}`` when several processes share CUDA devices."""
    if job.workers > 1 and job.device.startswith("cuda"):
        import torch

        count = torch.cuda.device_count()
        if count > 0:
            return f"cuda:{worker_id % count}"
    return job.device


class BlockSession(WorkerSession):
    """A worker of a blockwise run: opens the input, the partial outputs and the job's models once (``loaded`` =
    (vol, models) reuses this process's) and yields ``process(block)``, which writes a block, flushes the outputs
    and marks the block done."""

    job: BlockJob

    @contextlib.contextmanager
    def _session(self, worker_id: int) -> Iterator[WriteBlock]:
        from emrepair.io import open_volume
        from emrepair.runstate import ProgressDir, reopen_partial

        job, opts = self.job, self.job.options
        with contextlib.ExitStack() as stack:
            if self.loaded is not None:
                vol, models = self.loaded
            else:
                vol = stack.enter_context(open_volume(job.input_path, dataset=opts.dataset, level=opts.level,
                                                          skip_unreadable=opts.skip_unreadable))
                models = job.load_models(vol, worker_device(job, worker_id))
            writer = reopen_partial(job.output, job.output_temp, **job.create_kwargs(vol, labels=False))
            stack.callback(writer.release)
            masks = None
            if job.masks and job.masks_temp:
                masks = reopen_partial(job.masks, job.masks_temp, **job.create_kwargs(vol, labels=True))
                stack.callback(masks.release)
            write = job.block_writer(stack, vol, models, writer, masks, self.tile_progress)
            state = ProgressDir(Path(job.progress_path))

            def process(block: BlockSpan) -> None:
                write(block)
                writer.flush()
                if masks is not None:
                    masks.flush()
                # only after the block's writes are flushed, and only while the run is still this one
                state.mark_done(block.start, block.stop, job.run_id)

            yield process
