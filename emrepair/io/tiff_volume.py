"""Lazy readers for a multi-page TIFF stack (one page per section) and its ImageJ voxel-size metadata."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from emrepair.errors import InputError
from emrepair.io.base import VolumeInfo
from emrepair.io.metadata import tidy_size, unit_to_nm, voxel_size_or_none
from emrepair.io.section_volume import (DECODE_ERRORS, SectionVolume, check_dtype, check_volume_shape,
                                        describe_decode_error)

# tifffile logs what it tolerates in damaged files; without a handler Python prints that on stderr, around the
# one-line error emrepair reports. Applications that configure logging still receive it.
logging.getLogger("tifffile").addHandler(logging.NullHandler())

SIDECAR_SUFFIX = ".emrepair.json"
_TIFF_ERRORS = DECODE_ERRORS + (tifffile.TiffFileError,)


def sidecar_path(path: Path) -> Path:
    """Where the JSON sidecar with provenance for a TIFF file lives: ``<path>.emrepair.json``."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_sidecar(path: Path) -> dict[str, Any]:
    """The attributes in a JSON sidecar, or {} when there is none or it is unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pixel_size(page: tifffile.TiffPage, tag: str) -> float | None:
    value = page.tags.get(tag)
    if value is None:
        return None
    num, den = value.value
    return den / num if num else None


def imagej_voxel_size(tif: tifffile.TiffFile) -> tuple[float, float, float] | None:
    """(z, y, x) in nm from ImageJ metadata (``spacing``, ``unit``) and the X/YResolution tags; None when unknown.

    Only ImageJ files are trusted: plain TIFF resolution tags usually hold a meaningless screen DPI.
    """
    meta = tif.imagej_metadata or {}
    if not meta or "spacing" not in meta:
        return None
    factor = unit_to_nm(meta.get("unit")) if meta.get("unit") else None  # ImageJ without a unit means pixels
    page = tif.pages.first
    px_x, px_y = _pixel_size(page, "XResolution"), _pixel_size(page, "YResolution")
    if factor is None or px_x is None or px_y is None:
        return None
    return voxel_size_or_none([tidy_size(float(meta["spacing"]) * factor), px_y * factor, px_x * factor])


class TiffVolume(SectionVolume):
    """A multi-page TIFF (ImageJ hyperstack or plain page stack); memory-mapped when uncompressed, else page-wise."""

    def __init__(self, path: Path) -> None:
        where = str(path)
        try:
            self._tif = tifffile.TiffFile(path)
        except _TIFF_ERRORS as exc:
            raise InputError(f"cannot read {where}: {describe_decode_error(exc)}") from exc
        try:
            series = self._tif.series[0]
            shape = tuple(int(s) for s in series.shape)
            if len(shape) == 2:
                raise InputError(f"{where}: a single 2-D image of shape {shape}, not a 3-D stack (z, y, x)")
            self.info = VolumeInfo(
                format="tiff",
                path=where,
                shape=check_volume_shape(shape, where),
                dtype=check_dtype(series.dtype, where),
                chunks=None,
                voxel_size=imagej_voxel_size(self._tif),
                compression=_compression_name(series),
                attrs=read_sidecar(sidecar_path(path)),
            )
            self._memmap: np.ndarray | None = None
            if self.info.compression is None:
                try:
                    self._memmap = tifffile.memmap(path, mode="r")
                except (ValueError, OSError):
                    self._memmap = None  # not contiguous: fall back to page-wise reads
        except InputError:
            self._tif.close()
            raise
        except _TIFF_ERRORS as exc:
            self._tif.close()
            raise InputError(f"cannot read {where}: {describe_decode_error(exc)}") from exc

    def _read_section(self, z: int) -> np.ndarray:
        if self._memmap is not None:
            return self._memmap[z]
        return self._tif.asarray(key=z, series=0)

    def close(self) -> None:
        """Close the file and drop the memory map."""
        super().close()
        self._memmap = None
        self._tif.close()


def _compression_name(series: tifffile.TiffPageSeries) -> str | None:
    comp = series.keyframe.compression
    return None if int(comp) == 1 else tifffile.COMPRESSION(comp).name.lower()
