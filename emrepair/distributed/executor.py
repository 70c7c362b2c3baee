"""Executors: run a list of blocks in this process or over N worker processes, each set up once.

A *setup* is a picklable callable ``setup(worker_id)`` returning a context manager that yields ``process(block)``;
a worker enters it once (loading the model once), processes its blocks, and leaves it (releasing its outputs).
``process`` itself flushes and marks the block done, so a killed executor loses at most the blocks in flight.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import sys
import threading
from typing import Any, Callable, ContextManager, Protocol, Sequence

from emrepair.callbacks import ProgressCallback
from emrepair.distributed.blocks import Block

ProcessBlock = Callable[[Block], None]
Setup = Callable[[int], ContextManager[ProcessBlock]]
OnDone = Callable[[Block], None]

POLL_SECONDS = 0.5


class Executor(Protocol):
    """Runs ``blocks`` through workers made by ``setup``; calls ``on_done(block)`` in this process as each ends."""

    def run(self, blocks: Sequence[Block], setup: Setup, on_done: OnDone | None = None) -> None: ...


class WorkerSession:
    """Base of a pipeline's ``setup``: ``session(worker_id)`` opens a worker's input, outputs and model and yields
    ``process(block)``; subclasses implement ``_session``.

    Picklable (worker processes receive it without ``loaded`` and ``tile_progress``); ``loaded`` lets the calling
    process reuse what it already opened.
    """

    def __init__(self, job: Any, loaded: tuple[Any, ...] | None = None,
                 tile_progress: ProgressCallback | None = None) -> None:
        self.job, self.loaded, self.tile_progress = job, loaded, tile_progress

    def __getstate__(self) -> dict[str, Any]:
        return {"job": self.job, "loaded": None, "tile_progress": None}

    def __call__(self, worker_id: int) -> contextlib.AbstractContextManager[Callable[[Any], None]]:
        return self._session(worker_id)

    def _session(self, worker_id: int) -> contextlib.AbstractContextManager[Callable[[Any], None]]:
        raise NotImplementedError


class SerialExecutor:
    """Every block in this process, in order."""

    def run(self, blocks: Sequence[Block], setup: Setup, on_done: OnDone | None = None) -> None:
        """Process the blocks one after the other with one worker (id 0)."""
        if not blocks:
            return
        with setup(0) as process:
            for block in blocks:
                process(block)
                if on_done is not None:
                    on_done(block)


class WorkerFailed(RuntimeError):
    """A worker process died without reporting an error (killed, or out of memory)."""


def die_with_parent() -> None:
    """End this worker process when its parent ends, however it ends (killed included): PR_SET_PDEATHSIG on Linux,
    and everywhere a thread that watches the parent's pid."""
    parent = mp.parent_process()
    parent_pid = parent.pid if parent is not None else os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            threading.Event().wait(POLL_SECONDS)

    if os.getppid() != parent_pid:  # the parent ended before the signal was armed
        os._exit(1)
    threading.Thread(target=watch, name="emrepair-parent-watch", daemon=True).start()


def _worker_main(setup: Setup, worker_id: int, todo: Any, done: Any, blocks: Sequence[Block]) -> None:
    die_with_parent()
    try:
        with setup(worker_id) as process:
            while True:
                index = todo.get()
                if index is None:
                    break
                process(blocks[index])
                done.put(("done", index))
    except KeyboardInterrupt:
        pass
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which re-raises it
        try:
            done.put(("error", exc))
        except Exception:  # noqa: BLE001 - an exception that cannot be pickled
            done.put(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))


class ProcessExecutor:
    """``workers`` spawned processes pulling block indices from a shared queue (multiprocessing, spawn start)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"need at least one worker, got {workers}")
        self.workers = workers

    def run(self, blocks: Sequence[Block], setup: Setup, on_done: OnDone | None = None) -> None:
        """Process the blocks over the worker processes; the first worker error is re-raised here."""
        if not blocks:
            return
        ctx = mp.get_context("spawn")
        todo, done = ctx.Queue(), ctx.Queue()
        for index in range(len(blocks)):
            todo.put(index)
        count = min(self.workers, len(blocks))
        for _ in range(count):
            todo.put(None)
        procs = [ctx.Process(target=_worker_main, args=(setup, wid, todo, done, list(blocks)), daemon=True)
                 for wid in range(count)]
        for proc in procs:
            proc.start()
        try:
            self._collect(blocks, procs, done, on_done)
        except BaseException:
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
            raise
        finally:
            for proc in procs:
                proc.join(timeout=30)

    @staticmethod
    def _collect(blocks: Sequence[Block], procs: list[Any], done: Any, on_done: OnDone | None) -> None:
        remaining = len(blocks)
        while remaining:
            try:
                kind, payload = done.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if not any(proc.is_alive() for proc in procs):
                    try:  # a last message may have arrived while we checked
                        kind, payload = done.get(timeout=POLL_SECONDS)
                    except queue.Empty:
                        codes = sorted({proc.exitcode for proc in procs})
                        raise WorkerFailed(f"worker processes ended with {remaining} blocks left "
                                           f"(exit codes {codes})") from None
                else:
                    continue
            if kind == "error":
                raise payload
            remaining -= 1
            if on_done is not None:
                on_done(blocks[payload])
