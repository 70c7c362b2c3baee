"""``create_output``: validate the target, derive layout from the input, and pick the writer by path suffix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from emrepair.errors import OutputError
from emrepair.io.base import SUPPORTED_DTYPES, VolumeInfo
from emrepair.io.metadata import rescale_spacing
from emrepair.io.output_guard import made_by_emrepair
from emrepair.io.paths import HDF5_SUFFIXES, TIFF_SUFFIXES
from emrepair.io.section_volume import SLAB_CACHE_BYTES
from emrepair.io.space import check_output_space
from emrepair.io.writers.base import VolumeWriter, recover_leftovers
from emrepair.io.writers.hdf5_writer import HDF5Writer
from emrepair.io.writers.tiff_writer import TiffFolderWriter, TiffStackWriter
from emrepair.io.writers.zarr_writer import OmeZarrWriter, ZarrWriter

MAX_CHUNK_XY = 1024


def output_format(path: Path) -> str:
    """"hdf5", "ome-zarr", "zarr", "tiff" or "image-folder", from the output path's suffix."""
    name = path.name.lower()
    if name.endswith(HDF5_SUFFIXES):
        return "hdf5"
    if name.endswith(".ome.zarr"):
        return "ome-zarr"
    if name.endswith(".zarr"):
        return "zarr"
    if name.endswith(TIFF_SUFFIXES):
        return "tiff"
    return "image-folder"


def output_chunks(like_chunks: tuple[int, int, int] | None, shape: tuple[int, int, int],
                  itemsize: int = 1) -> tuple[int, int, int]:
    """The input's chunk shape clipped to the output shape, else one section in tiles of at most 1024².

    The chunk depth is also capped so that one z-slab of chunks (depth x whole section) stays within
    SLAB_CACHE_BYTES: writers buffer such slabs, and a slab must never grow to the whole volume.
    """
    if like_chunks:
        chunks = (min(like_chunks[0], shape[0]), min(like_chunks[1], shape[1]), min(like_chunks[2], shape[2]))
    else:
        chunks = (1, min(shape[1], MAX_CHUNK_XY), min(shape[2], MAX_CHUNK_XY))
    max_depth = max(1, SLAB_CACHE_BYTES // max(1, shape[1] * shape[2] * itemsize))
    return (max(1, min(chunks[0], max_depth)), max(1, chunks[1]), max(1, chunks[2]))


def check_target(path: Path, like: VolumeInfo, overwrite: bool) -> Path:
    """Refuse outputs that would clobber the input, an existing path (without ``overwrite``), something emrepair did
    not write (even with it) or a symbolic link, or that cannot be written; clean up a killed writer's leftovers."""
    target = path.expanduser().absolute()
    parent = target.parent
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {parent}")
    if like.path:
        src = Path(like.path).expanduser().resolve()
        dst = target.resolve()
        if dst == src or src.is_relative_to(dst) or dst.is_relative_to(src):
            raise OutputError(f"output {target} would overwrite the input {like.path}")
    if target.is_symlink():
        raise OutputError(f"output {target} is a symbolic link; emrepair writes only paths it makes itself "
                          "(remove the link or name the real path)")
    recover_leftovers(target)
    if target.exists() and not overwrite:
        raise OutputError(f"output exists: {target} (use --overwrite to replace it)")
    if target.exists() and not made_by_emrepair(target):
        raise OutputError(f"output {target} is not an emrepair output (no emrepair provenance); --overwrite "
                          "replaces only what emrepair wrote: move it away yourself or choose another path")
    return target


def create_output(
    path: str | Path,
    like: VolumeInfo,
    shape: tuple[int, int, int] | None = None,
    dtype: Any = None,
    voxel_size: tuple[float, float, float] | None = None,
    overwrite: bool = False,
    labels: bool = False,
    attrs: dict[str, Any] | None = None,
    chunks: tuple[int, int, int] | None = None,
    temp_path: str | Path | None = None,
    resume: bool = False,
    label_values: dict[int, Any] | None = None,
) -> VolumeWriter:
    """Start writing a volume shaped like ``like`` (an input's VolumeInfo) to ``path``, under a temporary name.

    The format follows the path: ``.h5``/``.hdf5``, ``.zarr``, ``.ome.zarr`` (OME-Zarr 0.5 with a 2x in-plane
    pyramid made at commit), ``.tif``/``.tiff`` (ImageJ stack), anything else a folder of ``z00000.tif``... Chunks,
    compression, voxel size and ``like.attrs`` carry over unless overridden; ``labels=True`` writes uint8 labels
    (for ``.ome.zarr`` an image-label whose colours and names come from ``label_values``, value -> LabelValue of
    ``emrepair.io.ome_labels``, default ``DETECT_LABELS``).
    Call ``commit()`` to move the result into place, or use the writer as a context manager.

    ``chunks`` overrides the chunk shape (clipped like the input's). ``temp_path`` names the temporary output
    (default: ``.<name>.tmp-emrepair-<pid>`` beside the output); with ``resume=True`` an existing temporary output
    there is reopened for more writes instead of being replaced (``writer.resumed`` tells which happened), so a
    run that was interrupted, or several processes writing disjoint chunks, can fill one output.

    Raises:
        OutputError: the output exists (without ``overwrite``), is the input, or its folder is missing/unwritable.
    """
    target = check_target(Path(path), like, overwrite)
    out_shape = tuple(int(s) for s in (shape or like.shape))
    if len(out_shape) != 3 or any(s <= 0 for s in out_shape):
        raise OutputError(f"cannot create {target}: shape {out_shape} is not a non-empty (z, y, x) shape")
    out_dtype = np.dtype("uint8") if labels else np.dtype(dtype if dtype is not None else like.dtype)
    if labels and dtype is not None and np.dtype(dtype) != out_dtype:
        raise OutputError(f"cannot create {target}: label outputs are uint8, not {np.dtype(dtype)}")
    if out_dtype not in SUPPORTED_DTYPES:
        raise OutputError(f"cannot create {target}: unsupported dtype {out_dtype} (uint8, uint16, float32)")
    fmt = output_format(target)
    default_name = "labels" if labels else "raw"
    dataset = like.dataset if (like.dataset and fmt == "hdf5" and not labels) else default_name
    if fmt == "zarr" and like.dataset and not labels and like.format in ("hdf5", "zarr"):
        dataset = like.dataset
    check_output_space(target, fmt, out_shape, out_dtype, labels, Path(temp_path) if resume and temp_path else None)
    writer_cls: type[VolumeWriter] = {
        "hdf5": HDF5Writer, "ome-zarr": OmeZarrWriter, "zarr": ZarrWriter,
        "tiff": TiffStackWriter, "image-folder": TiffFolderWriter,
    }[fmt]
    writer = writer_cls(
        path=target,
        shape=out_shape,  # type: ignore[arg-type]
        dtype=out_dtype,
        voxel_size=voxel_size if voxel_size is not None else like.voxel_size,
        chunks=output_chunks(chunks or like.chunks, out_shape, out_dtype.itemsize),  # type: ignore[arg-type]
        compression=like.compression,
        dataset=dataset,
        labels=labels,
        attrs=rescale_spacing({**like.attrs, **(attrs or {})}, like.voxel_size, voxel_size),
        temp_path=Path(temp_path) if temp_path is not None else None,
        resume=resume,
    )
    writer.replace_existing = overwrite  # without --overwrite, commit never replaces what appeared meanwhile
    if isinstance(writer, OmeZarrWriter) and labels:
        writer.label_values = dict(label_values) if label_values is not None else None
    return writer
