"""The blockwise run every writing pipeline (fix, upsample-z) is: hold the output, prepare or rejoin the run,
write this process's pending blocks, commit when every block is done.

Every run keeps a progress folder beside its output (``emrepair.runstate``): the run record (fingerprint, plan,
chunks, provenance), a lock and one done marker per flushed block. An interrupted run goes on with
``--continue``, shares of one run (``--part``) and worker processes (``--workers``, or daisy) fill one output,
and the last to finish commits it. A subclass states what is particular to its pipeline: the fields that decide
its pixels, its plan and provenance, how its outputs are created, its blocks and its worker job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emrepair.blockwise.job import (
    BlockJob,
    BlockSession,
    BlockSpan,
    RunOutcome,
    RunSettings,
)
from emrepair.blockwise.outputs import (
    already_complete,
    commit_outputs,
    discard,
    keeping_finished_blocks,
    outputs_are_run,
    partial_path,
    stamp_run,
)
from emrepair.callbacks import ProgressCallback, WarnCallback
from emrepair.distributed.plan import RepairRun, run_from_dict, run_to_dict
from emrepair.io.base import Volume
from emrepair.runstate.progress import ProgressDir


class BlockwiseRun:
    """One run writing an output (and optional masks) block by block; ``write()`` does it.

    ``models`` are those this process loaded (reused by a run without worker processes); ``result`` (a
    ``RunResult``) gets the runs, the block counts, ``complete`` and ``already_complete``. ``progress(done,
    total)`` counts ``work_of(block)`` units.
    """

    report_start = False  # call progress(done, total) once before the first block

    def __init__(self, vol: Volume, output_path: str, options: RunSettings, result: RunOutcome, models: Any,
                 note: WarnCallback, progress: ProgressCallback | None = None,
                 tile_progress: ProgressCallback | None = None) -> None:
        self.vol, self.output, self.options, self.result = vol, output_path, options, result
        self.models, self.note, self.progress, self.tile_progress = models, note, progress, tile_progress

    # What a pipeline states.

    def fingerprint_fields(self) -> dict[str, Any]:
        """Everything that decides the output's pixels; ``--workers`` and ``--part`` do not."""
        raise NotImplementedError

    def plan(self) -> list[RepairRun]:
        """The repair runs of a new run (detection, a report or ``--sections``); a rejoined run reuses its own."""
        raise NotImplementedError

    def provenance(self, runs: list[RepairRun]) -> dict[str, Any]:
        """The provenance record its outputs carry."""
        raise NotImplementedError

    def create_kwargs(self, labels: bool, chunks: tuple[int, ...] | None) -> dict[str, Any]:
        """What ``create_output`` is told of the output (``labels`` False) or the masks."""
        raise NotImplementedError

    def blocks(self, runs: list[RepairRun], chunk_z: int) -> list[BlockSpan]:
        """Every block of the run (each with ``start`` and ``stop``), the same however the run is shared."""
        raise NotImplementedError

    def job(self, record: dict[str, Any], runs: list[RepairRun], progress_path: str) -> BlockJob:
        """What the workers need (picklable)."""
        raise NotImplementedError

    def work_of(self, block: BlockSpan) -> int:
        """The units of ``progress`` a block counts for."""
        return 1

    def reports(self, block: BlockSpan, total: int) -> bool:
        """Whether ``progress`` is called when ``block`` is done."""
        return total > 0

    def rejoined(self, runs: list[RepairRun]) -> None:
        """Called with the run's repair runs once it is prepared or rejoined."""
        self.result.runs = runs

    # The run itself.

    @property
    def finals(self) -> list[str | None]:
        """The final outputs: the output and the masks (None without)."""
        return [self.output, self.options.masks_path]

    def write(self) -> None:
        """Hold the output for this run (or find it complete already), then write this process's blocks."""
        from emrepair.runstate import ProgressDir, progress_dir_for, run_fingerprint

        state = ProgressDir(progress_dir_for(self.output))
        fields = self.fingerprint_fields()
        fingerprint = run_fingerprint(fields)
        if already_complete(state, self.finals, fingerprint, self.options):
            self.result.already_complete = True
            return
        with state.writing(self.output, self.options.part, self.note):  # one run at a time writes this output
            self._write_blocks(state, fingerprint, fields)

    def _write_blocks(self, state: ProgressDir, fingerprint: str, fields: dict[str, Any]) -> None:
        """Prepare (or rejoin) the run, write this process's blocks, and commit when every block is done."""
        options, result = self.options, self.result
        record, runs = self._prepare(state, fingerprint, fields)
        self.rejoined(runs)
        job = self.job(record, runs, str(state.path))
        blocks = self.blocks(runs, job.chunks[0])
        mine, todo = self._pending(blocks, state)
        total = sum(self.work_of(b) for b in mine)
        done = [total - sum(self.work_of(b) for b in todo)]
        if self.progress is not None and self.report_start:
            self.progress(done[0], total)

        def on_done(block: BlockSpan) -> None:
            done[0] += self.work_of(block)
            if self.progress is not None and self.reports(block, total):
                self.progress(done[0], total)

        with keeping_finished_blocks(state, self.finals, options.part):
            self._execute(job, todo, on_done)
        result.complete = self._commit_if_complete(job, blocks, state, record["provenance"])
        result.blocks_left = 0 if result.complete else len(blocks) - len(state.done())

    def _prepare(self, state: ProgressDir, fingerprint: str,
                 fields: dict[str, Any]) -> tuple[dict[str, Any], list[RepairRun]]:
        """Create the outputs and the run record once (under the lock), or check and reuse an earlier run's."""
        from emrepair.io import create_output

        with state.lock():
            record = self._earlier_record(state, fingerprint, fields)
            if record is not None:
                return record, [run_from_dict(d) for d in record["runs"]]
            try:
                runs = self.plan()
                provenance = self.provenance(runs)
                run_id = stamp_run(provenance, fingerprint)
                chunks = None
                for final in filter(None, self.finals):
                    labels = final != self.output
                    writer = create_output(final, overwrite=self.options.overwrite, temp_path=partial_path(final),
                                           attrs={"emrepair": provenance}, **self.create_kwargs(labels, chunks))
                    chunks = writer.chunks  # the masks follow the output's chunking, so blocks fit both
                    writer.release()
                record = {"version": 1, "run_id": run_id, "fingerprint": fingerprint, "fields": fields,
                          "chunks": list(chunks or ()),
                          "runs": [run_to_dict(r) for r in runs], "provenance": provenance}
                state.save(record)
            except BaseException:
                discard(state, self.finals)  # nothing of this run is worth keeping yet
                raise
            return record, runs

    def _earlier_record(self, state: ProgressDir, fingerprint: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Under ``state.lock()``: the record of an earlier run to rejoin (checked against this one), or None for a
        new run (``--overwrite`` discards an earlier one)."""
        from emrepair.runstate import check_rejoin

        options = self.options
        record = state.load()
        if record is not None and options.overwrite:
            discard(state, self.finals)  # no writer of it is alive: state.writing checked
            record = None
        if record is not None:
            check_rejoin(record, fingerprint, fields, self.output, bool(options.continue_run or options.part),
                         state.path)
        return record

    def _pending(self, blocks: list[BlockSpan], state: ProgressDir) -> tuple[list[BlockSpan], list[BlockSpan]]:
        """This share's blocks and those of them not done yet; their counts go into the result."""
        from emrepair.runstate import share_of

        part = self.options.part
        mine = share_of(blocks, *part) if part else blocks
        finished = state.done()
        todo = [b for b in mine if (b.start, b.stop) not in finished]
        self.result.blocks_total, self.result.blocks_skipped = len(blocks), len(mine) - len(todo)
        return mine, todo

    def _execute(self, job: BlockJob, todo: list[BlockSpan], on_done: Callable[[BlockSpan], None]) -> None:
        """Run the blocks in this process (with the models already loaded) or over the worker processes."""
        from emrepair.distributed.choice import make_executor
        from emrepair.distributed.executor import SerialExecutor

        options = self.options
        if options.workers <= 1:
            SerialExecutor().run(todo, BlockSession(job, (self.vol, self.models), self.tile_progress), on_done)
        else:
            make_executor(options.workers, options.executor).run(todo, BlockSession(job), on_done)

    def _commit_if_complete(self, job: BlockJob, blocks: list[BlockSpan], state: ProgressDir,
                            provenance: dict[str, Any]) -> bool:
        """Commit the outputs when every block is done (once, under the lock); True when the run is complete."""
        from emrepair.runstate import commit_when_complete

        return commit_when_complete(state, [(b.start, b.stop) for b in blocks],
                                    lambda: commit_outputs(job, self.vol, provenance), job.run_id,
                                    lambda: outputs_are_run(job))
