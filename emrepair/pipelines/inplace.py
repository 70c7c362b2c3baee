"""``emrepair fix --in-place`` and ``--undo``: repair sections inside the input, keeping a backup to restore them.

Before any pixel of the input changes, every section a repair writes, and every other section of the storage
chunks it writes, is saved to ``<input>.emrepair-backup/`` (see ``inplace_backup``: an intent with the input's
checksums first, the files, the manifest last, all fsynced). A failed or killed run therefore leaves either a
complete backup, which ``--undo`` restores and ``--continue`` restores and repairs again, or an incomplete one,
which both clear once they have checked the input unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from emrepair.callbacks import ProgressCallback, WarnCallback
from emrepair.errors import OutputError, UsageError
from emrepair.pipelines.inplace_backup import (
    backup_state,
    clear_incomplete,
    load_backup,
    remove_backup,
    restore_backup,
    verify_restored,
    write_backup,
)

BACKUP_SUFFIX = ".emrepair-backup"


def backup_dir_for(container: str | Path) -> Path:
    """The backup folder of an input (beside its file or folder)."""
    path = Path(container).expanduser().absolute()
    return path.with_name(path.name + BACKUP_SUFFIX)


def _folder_files(vol: Any) -> list[Path] | None:
    from emrepair.io.folder_volume import ImageFolderVolume

    return list(vol.files) if isinstance(vol, ImageFolderVolume) else None


def settle_backup(path: str, dataset: str | None, level: int | None, continue_run: bool) -> dict[str, Any] | None:
    """Deal with a backup left by an earlier in-place run before a new one starts.

    None when there is none, or an incomplete one that was cleared (``continue_run`` only). A complete one is
    refused without ``continue_run``; with it the input is restored from it and its manifest returned.
    """
    from emrepair.io import open_volume

    with open_volume(path, dataset=dataset, level=level) as vol:
        folder = backup_dir_for(vol.info.path)
        state = backup_state(folder)
        if state == "none":
            return None
        if not continue_run:
            raise OutputError(f"an earlier in-place repair left its backup {folder}; restore it with "
                              f"`emrepair fix --undo {path}`, or finish it with --continue")
        files = _folder_files(vol)
        if state == "incomplete":
            clear_incomplete(folder, vol, files)
            return None
        manifest = load_backup(folder, vol)
        info = vol.info
    restore_backup(manifest, folder, info, files)
    return manifest


def run_fix_in_place(path: str, options: Any, *, progress: ProgressCallback | None = None,
                     tile_progress: ProgressCallback | None = None, warn: WarnCallback | None = None) -> Any:
    """:func:`_run_fix_in_place` holding the input's in-place lock (one in-place run or undo at a time)."""
    from emrepair.io.paths import locate
    from emrepair.pipelines.inplace_lock import in_place_lock

    if options.dry_run:
        return _run_fix_in_place(path, options, progress=progress, tile_progress=tile_progress, warn=warn)
    with in_place_lock(locate(path, options.dataset).container):
        return _run_fix_in_place(path, options, progress=progress, tile_progress=tile_progress, warn=warn)


def _run_fix_in_place(path: str, options: Any, *, progress: ProgressCallback | None = None,
                      tile_progress: ProgressCallback | None = None, warn: WarnCallback | None = None) -> Any:
    """Repair ``path`` in place after backing up every chunk to be written (complete, synced); returns a FixResult.

    ``options.continue_run`` finishes an interrupted in-place repair: a complete backup is restored first and the
    repair planned and written again from the original input; an incomplete one is cleared after checking the
    input. A write error (a full disk) is an OutputError that names the complete backup and both ways out.
    """
    from emrepair.engine import estimate_memory
    from emrepair.engine.notes import Notes, resolve_device_noting
    from emrepair.io import open_volume
    from emrepair.io.writers.inplace import check_in_place_format
    from emrepair.pipelines.fix import FixResult, _plan
    from emrepair.pipelines.model_choice import auto_fix_model
    from emrepair.pipelines.repairers import (
        build_repairers,
        note_fold_repairer,
        note_one_sided,
    )

    if options.part is not None or options.workers > 1:
        raise UsageError("--in-place runs in one process; use -o with --part or --workers")
    started = time.perf_counter()
    note = Notes(warn)
    from emrepair.blockwise.outputs import save_summary
    from emrepair.io.output_guard import guard_outputs, target

    # --save-report must not be the input (or lie inside it) nor replace a file without --overwrite (issue #23).
    guard_outputs([path, options.report_path], [target("--save-report", options.summary_path, "json")],
                  options.overwrite)
    # A complete earlier backup (--continue) is restored first, so the plan is made from the original input.
    earlier = None if options.dry_run else settle_backup(path, options.dataset, options.level, options.continue_run)

    with open_volume(path, dataset=options.dataset, level=options.level,
                     skip_unreadable=options.skip_unreadable) as vol:
        check_in_place_format(vol.info)
        resolved = resolve_device_noting(options.device, note)
        model_name = auto_fix_model(options.model, vol.info.voxel_size, resolved.type, note)
        device = str(resolved)
        engine, meta, repairers = build_repairers(options, model_name, device, vol.shape[1:], vol.info.voxel_size)
        runs = _plan(vol, options)
        note_one_sided(runs, note)
        result = FixResult(
            input=str(path), output=str(path), shape=vol.shape, model=meta.name,
            weights_sha256=meta.weights_sha256, runs=runs,
            tiles_per_section=len(engine.plan(vol.shape[1:])),
            memory_estimate_bytes=int(estimate_memory(engine.model, engine.tile_size_for(vol.shape[1:]),
                                                      options.batch_size)),
            device=device, dry_run=options.dry_run, warnings=note,
        )
        note_fold_repairer(result, repairers)
        if options.dry_run or not runs:
            result.seconds = time.perf_counter() - started
            return result
        sections = [z for run in runs for z in run.sections]
        folder = backup_dir_for(vol.info.path)
        files = _folder_files(vol)
        if earlier is None:
            write_backup(vol, sections, folder, files)
        elif earlier.get("sections") != sections:
            raise UsageError(f"the backup {folder} is of other sections; the input was restored from it: "
                             f"run `emrepair fix --undo {path}` to drop it, then repair again")
        vol.close()  # HDF5 cannot hold one file open read-only and for writing at once
        try:
            _write_in_place(vol, runs, sections, repairers, progress, tile_progress, files)
        except OutputError as exc:
            raise OutputError(f"{exc}; the backup {folder} is complete: `emrepair fix --undo {path}` restores the "
                              f"input, or rerun with --continue once the cause is fixed") from exc
    result.seconds = time.perf_counter() - started
    save_summary(options, result)
    return result


def _write_in_place(vol: Any, runs: list[Any], sections: list[int], repairers: Any,
                    progress: ProgressCallback | None, tile_progress: ProgressCallback | None,
                    files: list[Path] | None) -> None:
    """Repair ``runs`` straight into the input (its backup is complete)."""
    from emrepair.distributed.blocks import Block
    from emrepair.distributed.repair import BlockWriter
    from emrepair.io import ArrayVolume
    from emrepair.io.writers.inplace import InPlaceWriter

    writer = InPlaceWriter(vol.info, files)
    try:
        # Neighbours are read through the writable handle; they are good sections and never change.
        source = ArrayVolume(writer.array) if writer.array is not None else vol
        # One block per run and one section per slab: only the repaired sections are written.
        blocks = [Block(run.first, run.last + 1, (run,)) for run in runs]
        block_writer = BlockWriter(source, writer, None, repairers, 1, None, tile_progress, frozenset(sections))
        done = 0
        for block in blocks:
            block_writer.write(block)
            writer.flush()
            done += len(block.runs[0].sections)
            if progress is not None:
                progress(done, len(sections))
    finally:
        writer.release()


def undo_in_place(path: str, dataset: str | None = None, level: int | None = None) -> list[int]:
    """:func:`_undo_in_place` holding the input's in-place lock (one in-place run or undo at a time)."""
    from emrepair.io.paths import locate
    from emrepair.pipelines.inplace_lock import in_place_lock

    with in_place_lock(locate(path, dataset).container):
        return _undo_in_place(path, dataset, level)


def _undo_in_place(path: str, dataset: str | None = None, level: int | None = None) -> list[int]:
    """Restore the input from the backup of an in-place repair of ``path``, check it, then delete the backup.

    Returns the repaired sections that were put back; an incomplete backup (the run stopped before writing) is
    cleared once the input is checked unchanged, and nothing is restored.
    """
    from emrepair.io import open_volume

    with open_volume(path, dataset=dataset, level=level) as vol:
        folder = backup_dir_for(vol.info.path)
        state = backup_state(folder)
        if state == "none":
            raise UsageError(f"{path} has no in-place repair to undo (no {folder})")
        files = _folder_files(vol)
        if state == "incomplete":
            clear_incomplete(folder, vol, files)
            return []
        manifest = load_backup(folder, vol)
        info = vol.info
    restore_backup(manifest, folder, info, files)
    with open_volume(path, dataset=dataset, level=level) as vol:
        verify_restored(manifest, vol, _folder_files(vol))
    remove_backup(folder)
    return sorted(int(z) for z in manifest["sections"])
