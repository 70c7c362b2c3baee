"""Generic pieces of a resumable run shared by pipelines: rejoin an earlier run, reopen its partial outputs,
refuse outputs that shares cannot write, and commit once every block is done."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from emrepair.errors import OutputError, UsageError

CONTINUE_HINT = "rerun the same command with --continue"
# Output formats that several processes can write at once (disjoint chunks or files).
SHAREABLE_FORMATS = ("zarr", "ome-zarr", "image-folder")


def check_rejoin(record: dict[str, Any], fingerprint: str, fields: dict[str, Any], output: str,
                 may_continue: bool, progress_path: Path) -> None:
    """Refuse to rejoin an unfinished run started with other arguments (UsageError, naming the fields that
    differ) or, unless ``may_continue`` (``--continue`` or ``--part``), at all (OutputError)."""
    if record.get("fingerprint") != fingerprint:
        changed = sorted(k for k in fields if record.get("fields", {}).get(k) != fields[k])
        raise UsageError(f"an unfinished run of {output} was started with other arguments or input "
                         f"({', '.join(changed) or 'unknown'} differ); rerun it with the same ones, "
                         f"or add --overwrite to start again")
    if not may_continue:
        raise OutputError(f"an unfinished run of {output} exists ({progress_path}); {CONTINUE_HINT} "
                          f"to finish it, or add --overwrite to start again")


def check_share_targets(paths: Iterable[str | None], part: tuple[int, int] | None, workers: int,
                        overwrite: bool) -> None:
    """Refuse ``--part`` / ``--workers`` with outputs several processes cannot write, and ``--part`` with
    ``--overwrite`` (UsageError)."""
    from emrepair.io.create import output_format

    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    shared = [name for name, on in (("--part", part is not None), ("--workers", workers > 1)) if on]
    for path in filter(None, paths):
        fmt = output_format(Path(path))
        if shared and fmt not in SHAREABLE_FORMATS:
            raise UsageError(f"{' and '.join(shared)} need outputs that several processes can write at once "
                             f"(.zarr, .ome.zarr or a folder); {path} is {fmt}")
    if part is not None and overwrite:
        raise UsageError("--part cannot be combined with --overwrite (shares would delete each other's work); "
                         "remove the old output first")


def reopen_partial(final: str, temp: str, **create: Any) -> Any:
    """Reopen the partial output ``temp`` of ``final`` for more writes (``create`` as for ``create_output``);
    OutputError when it is missing."""
    from emrepair.io import create_output

    writer = create_output(final, overwrite=True, temp_path=temp, resume=True, **create)
    if not writer.resumed:
        writer.abort()
        raise OutputError(f"the partial output {temp} of this run is missing; start again with --overwrite")
    return writer


def commit_when_complete(state: Any, keys: Iterable[tuple[int, int]], commit: Callable[[], None],
                         run_id: str | None = None, committed: Callable[[], bool] | None = None) -> bool:
    """Under the progress folder's lock: when every block in ``keys`` is done, call ``commit()`` and remove the
    folder. True when the run is complete (also when another share committed it: ``committed()`` says so).

    Raises RunDisplaced when the progress folder no longer belongs to run ``run_id`` (another run took over)."""
    if not state.exists():
        if run_id is None or (committed is not None and committed()):
            return True
        state.check_run(run_id)  # raises: the record is gone and the outputs are not this run's
    with state.lock():
        state.check_run(run_id)
        finished = state.done()
        if any(key not in finished for key in keys):
            return False
        commit()
        state.remove()
    return True
