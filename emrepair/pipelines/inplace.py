"""``emrepair fix --in-place`` and ``--undo``: repair sections inside the input, keeping a backup to restore them.

Before any pixel of the input changes, every section to be replaced is saved to ``<input>.emrepair-backup/``
(``z000012.npy`` per section, fsynced, and ``manifest.json`` with shape, dtype, dataset and sha256 of each file,
written last). ``undo_in_place`` writes the saved sections back bit-identically and removes the backup.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emrepair.errors import InputError, OutputError, UsageError
from emrepair.io.section_volume import one_line

ProgressCallback = Callable[[int, int], None]
WarnCallback = Callable[[str], None]
BACKUP_SUFFIX = ".emrepair-backup"
MANIFEST = "manifest.json"


def backup_dir_for(container: str | Path) -> Path:
    """The backup folder of an input (beside its file or folder)."""
    path = Path(container).expanduser().absolute()
    return path.with_name(path.name + BACKUP_SUFFIX)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_backup(vol: Any, sections: list[int], folder: Path) -> None:
    """Save ``sections`` of ``vol`` into ``folder`` and write the manifest last (so a manifest means complete)."""
    try:
        folder.mkdir()
        digests = {}
        for z in sections:
            path = folder / f"z{z:06d}.npy"
            with open(path, "wb") as fh:
                np.save(fh, vol.read_section(z))
                fh.flush()
                os.fsync(fh.fileno())
            digests[str(z)] = _sha256(path.read_bytes())
        manifest = {"version": 1, "input": vol.info.path, "format": vol.info.format, "dataset": vol.info.dataset,
                    "shape": list(vol.shape), "dtype": str(vol.dtype), "sections": sections, "sha256": digests}
        temp = folder / (MANIFEST + ".tmp")
        with open(temp, "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        temp.replace(folder / MANIFEST)
    except OSError as exc:
        raise OutputError(f"cannot write the backup {folder}: {one_line(exc)}; the input was not changed") from exc


def read_manifest(folder: Path, vol: Any) -> dict[str, Any]:
    """The backup manifest, checked against the volume it belongs to."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"no usable backup manifest in {folder}: {one_line(exc)}") from exc
    if (manifest.get("shape") != list(vol.shape) or manifest.get("dtype") != str(vol.dtype)
            or manifest.get("dataset") != vol.info.dataset):
        raise InputError(f"the backup {folder} belongs to another volume ({manifest.get('shape')} "
                         f"{manifest.get('dtype')} {manifest.get('dataset')})")
    return manifest


def run_fix_in_place(path: str, options: Any, *, progress: ProgressCallback | None = None,
                     tile_progress: ProgressCallback | None = None, warn: WarnCallback | None = None) -> Any:
    """Repair ``path`` in place after backing up every section to be replaced; returns a FixResult.

    ``options.continue_run`` finishes an interrupted in-place repair with its existing backup (rewriting the
    repaired sections is idempotent: they are made only from good sections, which are never changed).
    """
    from emrepair.distributed.blocks import Block
    from emrepair.distributed.repair import BlockWriter
    from emrepair.engine import estimate_memory
    from emrepair.io import ArrayVolume, open_volume
    from emrepair.io.folder_volume import ImageFolderVolume
    from emrepair.io.writers.inplace import InPlaceWriter, check_in_place_format
    from emrepair.pipelines.fix import FixResult, _note_one_sided, _plan, build_repairers, note_fold_repairer
    from emrepair.pipelines.model_choice import auto_fix_model
    from emrepair.pipelines.notes import Notes, resolve_device_noting

    if options.part is not None or options.workers > 1:
        raise UsageError("--in-place runs in one process; use -o with --part or --workers")
    started = time.perf_counter()
    note = Notes(warn)

    with open_volume(path, dataset=options.dataset, level=options.level) as vol:
        check_in_place_format(vol.info)
        resolved = resolve_device_noting(options.device, note)
        model_name = auto_fix_model(options.model, vol.info.voxel_size, resolved.type, note)
        device = str(resolved)
        engine, meta, repairers = build_repairers(options, model_name, device, vol.shape[1:], vol.info.voxel_size)
        runs = _plan(vol, options)
        _note_one_sided(runs, note)
        result = FixResult(
            input=str(path), output=str(path), shape=vol.shape, model=getattr(meta, "name", model_name),
            weights_sha256=getattr(meta, "weights_sha256", None), runs=runs,
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
        if folder.exists():
            if not options.continue_run:
                raise OutputError(f"an earlier in-place repair left its backup {folder}; restore it with "
                                  f"`emrepair fix --undo {path}`, or finish it with --continue")
            if read_manifest(folder, vol).get("sections") != sections:
                raise UsageError(f"the backup {folder} is of other sections; undo that repair first")
        else:
            write_backup(vol, sections, folder)
        files = vol.files if isinstance(vol, ImageFolderVolume) else None
        vol.close()  # HDF5 cannot hold one file open read-only and for writing at once
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
    result.seconds = time.perf_counter() - started
    if options.summary_path:
        Path(options.summary_path).write_text(json.dumps(result.to_dict(), indent=2))
    return result


def undo_in_place(path: str, dataset: str | None = None, level: int | None = None) -> list[int]:
    """Write the sections saved by an in-place repair of ``path`` back, then delete the backup; returns their z."""
    from emrepair.io import open_volume
    from emrepair.io.folder_volume import ImageFolderVolume
    from emrepair.io.writers.inplace import InPlaceWriter

    with open_volume(path, dataset=dataset, level=level) as vol:
        folder = backup_dir_for(vol.info.path)
        if not folder.is_dir():
            raise UsageError(f"{path} has no in-place repair to undo (no {folder})")
        manifest = read_manifest(folder, vol)
        saved = {}
        for z in manifest["sections"]:
            file = folder / f"z{int(z):06d}.npy"
            try:
                raw = file.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read the backup {file}: {one_line(exc)}") from exc
            if _sha256(raw) != manifest["sha256"].get(str(z)):
                raise InputError(f"the backup {file} is damaged (checksum mismatch); nothing was restored")
            saved[int(z)] = file
        files = vol.files if isinstance(vol, ImageFolderVolume) else None
        vol.close()
        writer = InPlaceWriter(vol.info, files)
        try:
            for z, file in saved.items():
                writer.write_section(z, np.load(file))
        finally:
            writer.release()
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return sorted(saved)
