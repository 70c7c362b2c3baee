"""The backup of an in-place repair: what it covers, how it is written, checked, restored and cleared.

``<input>.emrepair-backup/`` holds, in the order they are written (each fsynced, then the folder):

- ``intent.json``: the sections to repair, the sections to save and the sha256 of each of those as the input
  holds it now. Written before anything else, so a backup cut short can be checked against the input.
- one file per saved section: ``z000012.npy`` (HDF5, Zarr: its pixels) or ``z000012.tif`` (TIFF folders: the
  original file, byte for byte). HDF5 and Zarr rewrite whole chunks, so every section of every chunk a repair
  writes is saved (the chunk depth in z, e.g. 33 sections around one repaired section of a (33, 33, 65) file):
  a chunk torn by a kill is rewritten whole from the backup.
- ``manifest.json``, last: the intent plus the sha256 of each backup file. Only then is the input written.

A backup with a manifest is complete (the input may have been written: ``restore_backup`` puts it back). One
without is incomplete: no write has happened, and once the input is checked against the intent it is cleared.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from emrepair.errors import InputError, OutputError
from emrepair.io.section_volume import one_line
from emrepair.io.space import check_free_space, short_write_as_enospc
from emrepair.io.writers.inplace import (
    InPlaceWriter, crash_point, fsync_path, reset_unreadable_chunks, storage_block,
)
from emrepair.pipelines.provenance import sha256_of

MANIFEST = "manifest.json"
INTENT = "intent.json"
VERSION = 2
RESTORE_BAND_BYTES = 64 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def section_digest(section: np.ndarray) -> str:
    """sha256 of a section's pixels (dtype, shape and bytes)."""
    arr = np.ascontiguousarray(section)
    return sha256_bytes(f"{arr.dtype.str}{arr.shape}".encode() + arr.tobytes())


def covered_sections(info: Any, sections: list[int]) -> list[int]:
    """Every section of every storage chunk that writing ``sections`` touches (the sections for TIFF folders)."""
    depth = storage_block(info)[0]
    covered: set[int] = set()
    for z in sections:
        z0 = z - z % depth
        covered.update(range(z0, min(z0 + depth, int(info.shape[0]))))
    return sorted(covered)


def backup_name(z: int, files: list[Path] | None) -> str:
    """File name of section ``z`` in the backup."""
    return f"z{z:06d}" + (files[z].suffix.lower() if files is not None else ".npy")


def input_digest(vol: Any, z: int, files: list[Path] | None) -> str:
    """sha256 of section ``z`` of the input as it is now: its file's bytes (folders) or its pixels."""
    try:
        return sha256_of(files[z]) if files is not None else section_digest(vol.read_section(z))
    except OSError as exc:
        raise InputError(f"cannot read section {z} of {vol.info.path}: {one_line(exc)}") from exc


def backup_state(folder: Path) -> str:
    """"none", "incomplete" (no manifest: the input was never written) or "complete"."""
    if not folder.exists():
        return "none"
    return "complete" if (folder / MANIFEST).is_file() else "incomplete"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    crash_point()
    temp.replace(path)


def _backup_bytes(vol: Any, covered: list[int], files: list[Path] | None) -> int:
    if files is not None:
        return sum(files[z].stat().st_size for z in covered) + (1 << 20)
    return len(covered) * int(np.prod(vol.shape[1:])) * np.dtype(vol.dtype).itemsize + (1 << 20)


def write_backup(vol: Any, sections: list[int], folder: Path, files: list[Path] | None) -> dict[str, Any]:
    """Save every section a repair of ``sections`` touches into ``folder``, complete and synced; returns the manifest.

    On any failure (a full disk) the folder is removed again: the input has not been changed.
    """
    covered = covered_sections(vol.info, sections)
    check_free_space(folder.parent, _backup_bytes(vol, covered, files), "the backup")
    try:
        folder.mkdir()  # never an existing folder: that one is not ours to remove below
    except OSError as exc:
        raise OutputError(f"cannot create the backup {folder}: {one_line(exc)}; the input was not changed") from exc
    try:
        intent = {"version": VERSION, "input": vol.info.path, "format": vol.info.format,
                  "dataset": vol.info.dataset, "shape": list(vol.shape), "dtype": str(vol.dtype),
                  "sections": sections, "saved": covered,
                  "files": {str(z): files[z].name for z in covered} if files is not None else None,
                  "input_sha256": {str(z): input_digest(vol, z, files) for z in covered}}
        _write_json(folder / INTENT, intent)
        fsync_path(folder)
        digests = {}
        for z in covered:
            path = folder / backup_name(z, files)
            crash_point()
            if files is not None:
                shutil.copy2(files[z], path)
            else:
                with open(path, "wb") as fh:
                    np.save(fh, vol.read_section(z))
            fsync_path(path)
            digests[str(z)] = sha256_of(path)
        fsync_path(folder)
        manifest = {**intent, "sha256": digests}
        _write_json(folder / MANIFEST, manifest)
        fsync_path(folder)
        return manifest
    except BaseException as exc:  # a full disk, Ctrl-C: the input is untouched, so no backup is left behind
        shutil.rmtree(folder, ignore_errors=True)
        if not isinstance(exc, OSError):
            raise
        reason = one_line(short_write_as_enospc(exc))
        raise OutputError(f"cannot write the backup {folder}: {reason}; the input was not changed") from exc


def load_backup(folder: Path, vol: Any) -> dict[str, Any]:
    """The manifest of a complete backup, checked against the volume and against every backup file's sha256."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"no usable backup manifest in {folder}: {one_line(exc)}") from exc
    check_belongs(manifest, folder, vol)
    for z in manifest.get("saved", manifest["sections"]):
        file = folder / backup_file_name(manifest, int(z))
        try:
            digest = sha256_of(file)
        except OSError as exc:
            raise InputError(f"cannot read the backup {file}: {one_line(exc)}") from exc
        if digest != manifest["sha256"].get(str(z)):
            raise InputError(f"the backup {file} is damaged (checksum mismatch); nothing was restored")
    return manifest


def backup_file_name(manifest: dict[str, Any], z: int) -> str:
    """The backup file of section ``z`` named by a manifest (version 1 backups hold .npy files only)."""
    names = manifest.get("files")
    suffix = Path(names[str(z)]).suffix.lower() if names else ".npy"
    return f"z{z:06d}{suffix}"


def check_belongs(record: dict[str, Any], folder: Path, vol: Any) -> None:
    """Raise InputError unless a manifest or intent describes ``vol``."""
    if (record.get("shape") != list(vol.shape) or record.get("dtype") != str(vol.dtype)
            or record.get("dataset") != vol.info.dataset):
        raise InputError(f"the backup {folder} belongs to another volume ({record.get('shape')} "
                         f"{record.get('dtype')} {record.get('dataset')})")


def clear_incomplete(folder: Path, vol: Any, files: list[Path] | None) -> None:
    """Remove a backup cut short before its manifest, once the input is checked unchanged against its intent."""
    try:
        intent = json.loads((folder / INTENT).read_text())
    except (OSError, ValueError):
        intent = None  # cut short before the intent was whole: nothing after it ran, so nothing was written
    if intent is not None:
        check_belongs(intent, folder, vol)
        for z, digest in intent["input_sha256"].items():
            if input_digest(vol, int(z), files) != digest:
                raise InputError(f"the incomplete backup {folder} does not match section {z} of the input, which "
                                 f"changed after the backup began; it is kept for you to inspect")
    remove_backup(folder)


def remove_backup(folder: Path) -> None:
    """Delete a backup, manifest first: a deletion cut short leaves an incomplete backup, which is clearable."""
    try:
        (folder / MANIFEST).unlink(missing_ok=True)
        fsync_path(folder)
        shutil.rmtree(folder)
    except OSError as exc:
        raise OutputError(f"cannot remove the backup {folder}: {one_line(exc)}") from exc


def restore_backup(manifest: dict[str, Any], folder: Path, info: Any, files: list[Path] | None) -> None:
    """Write every saved section back into the input, each storage chunk whole (TIFF folders: the original files)."""
    saved = [int(z) for z in manifest.get("saved", manifest["sections"])]
    if files is None and int(manifest.get("version", 1)) >= 2 and saved:
        try:
            reset_unreadable_chunks(info, saved)
        except (OSError, KeyError) as exc:
            raise OutputError(f"cannot restore {info.path}: {one_line(exc)}; the backup is kept") from exc
    writer = InPlaceWriter(info, files)
    try:
        if files is not None:
            for z in saved:
                writer.restore_file(z, folder / backup_file_name(manifest, z))
            return
        depth, rows = storage_block(info)[:2]
        if int(manifest.get("version", 1)) < 2:
            depth = 1  # a version 1 backup saved the repaired sections only
        width = int(info.shape[2])
        for z0 in sorted({z - z % depth for z in saved}):
            slab = [z for z in range(z0, min(z0 + depth, int(info.shape[0])))]
            if any(z not in saved for z in slab):
                raise InputError(f"the backup {folder} lacks sections of the chunk at z={z0}; nothing more restored")
            arrays = [np.load(folder / backup_file_name(manifest, z), mmap_mode="r") for z in slab]
            band = max(rows, RESTORE_BAND_BYTES // max(1, len(slab) * width * np.dtype(info.dtype).itemsize))
            band -= band % rows
            for y0 in range(0, int(info.shape[1]), band):
                y1 = min(y0 + band, int(info.shape[1]))
                block = np.stack([a[y0:y1] for a in arrays])
                writer.write_region(slice(z0, z0 + len(slab)), slice(y0, y1), slice(0, width), block)
    finally:
        writer.release()


def verify_restored(manifest: dict[str, Any], vol: Any, files: list[Path] | None) -> None:
    """Raise InputError unless every saved section of ``vol`` equals what the input held before the repair."""
    for z, digest in (manifest.get("input_sha256") or {}).items():
        if input_digest(vol, int(z), files) != digest:
            raise InputError(f"section {z} of {vol.info.path} differs from its backup after the restore; the backup "
                             f"is kept")
