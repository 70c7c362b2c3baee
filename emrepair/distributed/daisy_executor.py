"""The daisy (funkelab, ``pip install 'emrepair[distributed]'``; daisy 1.2+ or 2) executor: blocks as a 1-D daisy task.

Block ``i`` of the list is the daisy block whose write ROI is ``[i, i+1)``; daisy spawns ``workers`` long-lived
worker processes, each of which enters the setup once (one model load, ``worker_id`` from ``DAISY_CONTEXT``) and
pulls blocks from daisy's scheduler until none are left. Only block indices travel; workers read and write the
volumes themselves. A block counts as done when its marker exists (``check``), so daisy skips finished blocks too.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable, Sequence

from emrepair.distributed.blocks import Block
from emrepair.distributed.executor import OnDone, Setup
from emrepair.errors import OutputError


def daisy_available() -> bool:
    """Whether daisy can be imported."""
    return importlib.util.find_spec("daisy") is not None


def daisy_major() -> int:
    """The major version of the installed daisy (1 or 2; both are supported)."""
    import daisy

    try:
        return int(str(getattr(daisy, "__version__", "1")).split(".")[0])
    except ValueError:
        return 1


class _DaisyWorker:
    """The zero-argument process function daisy runs in each spawned worker (picklable)."""

    def __init__(self, setup: Setup, blocks: Sequence[Block]) -> None:
        self.setup = setup
        self.blocks = list(blocks)

    def __call__(self) -> None:
        import daisy

        from emrepair.distributed.executor import die_with_parent

        die_with_parent()  # a daisy worker ends with the run that spawned it, killed or not
        client = daisy.Client()
        worker_id = int(daisy.Context.from_env()["worker_id"])
        with self.setup(worker_id) as process:
            while True:
                with client.acquire_block() as block:
                    if block is None:
                        break
                    process(self.blocks[int(block.write_roi.begin[0])])


class DaisyExecutor:
    """Runs the blocks with ``daisy.run_blockwise`` over ``workers`` daisy workers."""

    def __init__(self, workers: int, is_done: Callable[[Block], bool] | None = None) -> None:
        self.workers = workers
        self.is_done = is_done

    def run(self, blocks: Sequence[Block], setup: Setup, on_done: OnDone | None = None) -> None:
        """Process the blocks; raises OutputError when daisy reports blocks that failed."""
        if not blocks:
            return
        import daisy

        blocks = list(blocks)
        unit = daisy.Roi((0,), (1,))
        check: Any = None
        if self.is_done is not None:
            is_done = self.is_done
            check = lambda b: is_done(blocks[int(b.write_roi.begin[0])])  # noqa: E731
        v2 = daisy_major() >= 2
        workers = {"max_workers" if v2 else "num_workers": min(self.workers, len(blocks))}
        task = daisy.Task(
            "emrepair-fix", total_roi=daisy.Roi((0,), (len(blocks),)), read_roi=unit, write_roi=unit,
            process_function=_DaisyWorker(setup, blocks), check_function=check, max_retries=0, fit="shrink",
            **workers,
        )
        # daisy 2 draws a tqdm bar and prints an execution summary on stdout, which is for results (--json)
        ok = daisy.run_blockwise(task, progress=False, summary=False) if v2 else daisy.run_blockwise([task])
        if not ok:
            raise OutputError("daisy reported failed blocks (see ./daisy_logs for the worker errors); "
                              "rerun the same command with --continue")
        if on_done is not None:
            for block in blocks:
                on_done(block)
