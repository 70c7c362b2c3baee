"""Lazy reader for Zarr v2/v3 arrays and groups, including OME-Zarr 0.4/0.5 multiscale images."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import zarr

from emrepair.errors import InputError, InputWarning
from emrepair.io.base import VolumeInfo
from emrepair.io.metadata import decode_json_text, to_jsonable, voxel_size_or_none
from emrepair.io.ome import ome_levels, parse_multiscales
from emrepair.io.section_volume import DECODE_ERRORS, SectionVolume, check_dtype, check_volume_shape, one_line
from emrepair.io.zarr_store import SPARSE_WARNING_FRACTION, ChunkIndex, build_chunk_index, open_store

_OPEN_ERRORS = DECODE_ERRORS + (AttributeError,)
_LAYOUT_ATTRS = {"resolution", "multiscales", "ome", "omero", "image-label", "_ARRAY_DIMENSIONS"}


def codec_name(array: zarr.Array) -> str | None:
    """Short name of the array's (first) compressor, e.g. "zstd", "gzip", "blosc"; None when uncompressed."""
    codecs = getattr(array, "compressors", ()) or ()
    if not codecs:
        return None
    name = type(codecs[0]).__name__.lower()
    for short in ("zstd", "gzip", "blosc", "lz4", "zlib", "bz2", "lzma"):
        if short in name:
            return short
    return name.removesuffix("codec")


def _arrays_3d(group: zarr.Group) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(a.shape)) for name, a in group.members(max_depth=None) if isinstance(a, zarr.Array)]


class Resolved(NamedTuple):
    """The array an address points to, with what is known about it."""

    array: zarr.Array
    name: str | None
    voxel_size: tuple[float, float, float] | None
    format: str
    attrs: dict[str, Any]
    lead: int = 0  # leading OME time/channel axes, each of which must have size 1


class ZarrVolume(SectionVolume):
    """A 3-D Zarr array (v2 or v3), opened read-only; an OME-Zarr image gives level 0 unless ``level`` says otherwise."""

    def __init__(self, container: Path, inner: str | None = None, level: int | None = None) -> None:
        where = str(container)
        try:
            root = zarr.open(open_store(container), mode="r")
        except InputError:
            raise
        except _OPEN_ERRORS as exc:
            raise InputError(f"cannot read {where}: {one_line(exc)}") from exc
        try:
            array, name, voxel, fmt, attrs, lead = self._resolve(root, container, inner, level)
            label = f"{where}/{name}" if name else where
            if lead and any(int(n) != 1 for n in array.shape[:lead]):
                raise InputError(f"{label}: only single-channel, single-timepoint images are supported, got shape {array.shape}")
            shape = check_volume_shape(array.shape[lead:], label)
            dtype = check_dtype(array.dtype, f"{where}/{name}" if name else where)
        except InputError:
            raise
        except _OPEN_ERRORS as exc:
            raise InputError(f"cannot read {where}: {one_line(exc)}") from exc
        self._array = array
        self._lead = (0,) * lead
        chunks = (getattr(array, "shards", None) or array.chunks)[lead:]
        if len(chunks) != 3 or any(int(c) <= 0 for c in chunks):
            raise InputError(f"{where}: invalid chunk shape {tuple(chunks)} in the array metadata")
        self.info = VolumeInfo(
            format=fmt,
            path=where,
            shape=shape,
            dtype=dtype,
            dataset=name,
            chunks=tuple(int(c) for c in chunks),
            voxel_size=voxel,
            compression=codec_name(array),
            attrs=attrs,
        )
        grid = tuple(int(c) for c in (getattr(array, "shards", None) or array.chunks))
        array_dir = container / name if name else container
        self.chunk_index: ChunkIndex | None = build_chunk_index(array_dir, tuple(array.shape), grid, lead, where)
        # Label volumes and emrepair's own (complete) outputs are sparse by nature: zero chunks are not stored.
        sparse_by_nature = "emrepair" in attrs or _is_label_image(root)
        if self.chunk_index is not None and not sparse_by_nature:
            self.chunk_index.check_plausible(shape, dtype.itemsize, where)
        self._unwritten = frozenset(self.chunk_index.unwritten_sections(shape[0])) if self.chunk_index else frozenset()
        self._fill: Any = None
        self.notes: list[str] = []
        sparse = self.chunk_index is not None and self.chunk_index.fraction < SPARSE_WARNING_FRACTION
        if sparse and not sparse_by_nature:
            idx = self.chunk_index
            assert idx is not None
            self.notes.append(
                f"{where}: only {idx.written} of the {idx.total} chunks its shape {shape} declares are stored "
                f"({100 * idx.fraction:.1f} %); {len(self._unwritten)} sections were never written and read as "
                f"the fill value")
            warnings.warn(self.notes[-1], InputWarning, stacklevel=3)

    @staticmethod
    def _resolve(
        root: Any, container: Path, inner: str | None, level: int | None
    ) -> Resolved:
        """Find the array an address points to."""
        where = str(container)
        if isinstance(root, zarr.Array):
            if inner or level is not None:
                raise InputError(f"{where}: is a single array, it has no dataset '{inner or level}'")
            attrs = dict(root.attrs)
            return Resolved(root, None, voxel_size_or_none(attrs.get("resolution")), "zarr", _carried(attrs))
        root_attrs = dict(root.attrs)
        multiscales, _version = parse_multiscales(root_attrs, where)
        carried = _carried(root_attrs)
        if multiscales:
            levels = ome_levels(multiscales[0], where)
            if inner is not None:
                match = [lv for lv in levels if lv.path == inner]
                if match:
                    return Resolved(root[inner], inner, match[0].voxel_size, "ome-zarr", carried, match[0].lead)
            else:
                idx = 0 if level is None else int(level)
                if not 0 <= idx < len(levels):
                    raise InputError(f"{where}: level {level} not found (the image has {len(levels)} levels: 0..{len(levels) - 1})")
                chosen = levels[idx]
                return Resolved(root[chosen.path], chosen.path, chosen.voxel_size, "ome-zarr", carried, chosen.lead)
        elif level is not None and inner is None:
            raise InputError(f"{where}: --level given but this is not an OME-Zarr multiscale image")
        node: Any = root
        name = inner
        if inner is not None:
            if inner not in root:
                listing = ", ".join(n for n, _ in _arrays_3d(root)) or "none"
                raise InputError(f"{where}: no array '{inner}' (arrays: {listing})")
            node = root[inner]
            if isinstance(node, zarr.Group):
                sub = ZarrVolume._resolve(node, container / inner, None, level)
                return sub._replace(name=f"{inner}/{sub.name}" if sub.name else inner)
        else:
            found = _arrays_3d(root)
            three_d = [n for n, s in found if len(s) == 3]
            if not found:
                raise InputError(f"{where}: the Zarr group holds no arrays")
            if len(found) == 1:
                three_d = [found[0][0]]  # the only array: the shape check then says what is wrong with it
            if len(three_d) != 1:
                listing = ", ".join(f"{n} {s}" for n, s in found)
                if not three_d:
                    raise InputError(f"{where}: no 3-D array found (has {listing})")
                raise InputError(f"{where}: holds several 3-D arrays, choose one with --dataset: {', '.join(three_d)}")
            name = three_d[0]
            node = root[name]
        arr_attrs = dict(node.attrs)
        voxel = voxel_size_or_none(arr_attrs.get("resolution", root_attrs.get("resolution")))
        return Resolved(node, name, voxel, "zarr", {**carried, **_carried(arr_attrs)})

    def unwritten_sections(self) -> list[int]:
        """Sections that no chunk file covers (they read as the fill value), found from the chunk index alone."""
        return sorted(self._unwritten)

    def _fill_section(self) -> np.ndarray:
        """One never-written section as the store returns it (read once, then reused)."""
        if self._fill is None:
            self._fill = np.asarray(self._array[self._lead + (min(self._unwritten),)])
        return self._fill

    def _read_section(self, z: int) -> np.ndarray:
        if z in self._unwritten:
            return self._fill_section().copy()
        return self._array[self._lead + (z,)]

    def _read_region(self, z: slice, y: slice, x: slice) -> np.ndarray:
        zs = range(*z.indices(self.shape[0]))
        if self._unwritten and len(zs) and all(zi in self._unwritten for zi in zs):
            plane = self._fill_section()[y, x]
            return np.broadcast_to(plane, (len(zs),) + plane.shape).copy()
        if all(s.step in (None, 1) for s in (z, y, x)):
            return self._array[self._lead + (z, y, x)]
        return super()._read_region(z, y, x)


def _is_label_image(root: Any) -> bool:
    """Whether the store is an OME-NGFF label image (0.4 top-level or 0.5 under "ome")."""
    attrs = dict(root.attrs)
    return "image-label" in attrs or "image-label" in (attrs.get("ome") or {})


def _carried(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes worth carrying to an output: everything except layout and OME structure."""
    return {k: decode_json_text(to_jsonable(v)) for k, v in attrs.items() if k not in _LAYOUT_ATTRS}
