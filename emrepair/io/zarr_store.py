"""What a Zarr store holds on disk: a read-only store that refuses special files, and the chunk index.

A FIFO, device or socket among a store's files would block or never end when read, so every file is checked with
``stat`` (which never blocks) before it is opened. The chunk index (which chunk files exist) tells, without reading
pixels, which sections were never written (they read as the fill value) and how much of the declared shape is
stored at all.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zarr.storage import LocalStore

from emrepair.errors import InputError
from emrepair.io.paths import special_kind

METADATA_FILES = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
# Listing takes time per file; beyond this many files the index is not built (reads stay guarded).
MAX_INDEXED_FILES = 500_000
# Below this fraction of written chunks the volume gets a warning: its declared shape is mostly empty.
SPARSE_WARNING_FRACTION = 0.5
# A store whose declared sections are almost all unwritten (fewer than this fraction hold data, and more than
# SPARSE_REFUSE_SECTIONS are empty) has a wrong shape in its metadata, or was never filled: it is refused rather
# than "repaired" into a stack of synthetic sections.
SPARSE_REFUSE_FRACTION = 0.01
SPARSE_REFUSE_SECTIONS = 1000
# Likewise a declared volume over this size of which fewer than SPARSE_REFUSE_FRACTION of the chunks are stored
# (huge declared sections): reading one would allocate gigabytes of fill value.
SPARSE_REFUSE_BYTES = 1 << 30


def refuse_special(path: Path, what: str) -> None:
    """InputError when ``path`` exists and is not a regular file (FIFO, device, socket; links followed)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # absent: the store reports it as missing (fill value or missing metadata)
    kind = special_kind(mode)
    if kind is not None:
        raise InputError(f"{what} {path} is {kind}, not a regular file")


class SafeLocalStore(LocalStore):
    """A read-only LocalStore whose reads refuse FIFOs, devices and sockets instead of blocking on them."""

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        """Read ``key`` after checking it is a regular file (see :class:`zarr.storage.LocalStore`)."""
        refuse_special(self.root / key, "Zarr file")
        return await super().get(key, prototype, byte_range)

    async def get_partial_values(self, prototype: Any, key_ranges: Any) -> Any:
        """Partial reads (sharded arrays), with the same check as :meth:`get`."""
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            refuse_special(self.root / key, "Zarr file")
        return await super().get_partial_values(prototype, key_ranges)


def open_store(container: Path) -> SafeLocalStore:
    """A read-only :class:`SafeLocalStore` on a Zarr folder."""
    return SafeLocalStore(container, read_only=True)


@dataclass(frozen=True)
class ChunkIndex:
    """Which chunk (or shard) files of an array exist.

    Attributes:
        written: number of chunk files found.
        total: number of chunks the declared shape needs.
        written_z: indices (along z) of the chunk layers holding at least one chunk file.
        depth: sections per chunk layer.
    """

    written: int
    total: int
    written_z: frozenset[int]
    depth: int

    @property
    def fraction(self) -> float:
        """Share of the declared chunks that are stored."""
        return self.written / self.total if self.total else 1.0

    def check_plausible(self, shape: tuple[int, int, int], itemsize: int, where: str) -> None:
        """Refuse a store whose declared sections are almost all unwritten, or whose declared size is far beyond
        the chunks stored (see SPARSE_REFUSE_FRACTION)."""
        n_sections = shape[0]
        declared = math.prod(shape) * itemsize
        if declared > SPARSE_REFUSE_BYTES and self.fraction < SPARSE_REFUSE_FRACTION:
            raise InputError(f"{where}: its metadata declares a {' x '.join(map(str, shape))} volume "
                             f"({declared / 2**30:.1f} GiB) but only {self.written} of its {self.total} chunks are "
                             f"stored; the declared shape is probably wrong, or the store was never filled")
        empty = len(self.unwritten_sections(n_sections))
        held = n_sections - empty
        if empty > SPARSE_REFUSE_SECTIONS and held < SPARSE_REFUSE_FRACTION * n_sections:
            first = sorted(self.written_z)[:3]
            shown = ", ".join(f"{z * self.depth}-{min(n_sections, (z + 1) * self.depth) - 1}" for z in first)
            raise InputError(f"{where}: its metadata declares {n_sections} sections but only {held} hold any data "
                             f"(sections {shown or 'none'}{', ...' if len(self.written_z) > 3 else ''}); the "
                             f"declared shape is probably wrong, or the store was never filled")

    def unwritten_sections(self, n_sections: int) -> list[int]:
        """Sections whose whole chunk layer is unwritten, so that they read as the fill value."""
        return [z for z in range(n_sections) if z // self.depth not in self.written_z]


def _chunk_coords(rel: str, ndim: int) -> tuple[int, ...] | None:
    """Chunk grid coordinates from a key such as ``c/1/0/0``, ``c.1.0.0``, ``1.0.0`` or ``1/0/0``."""
    parts = rel.replace(os.sep, ".").replace("/", ".").split(".")
    if parts and parts[0] == "c":
        parts = parts[1:]
    if len(parts) != ndim or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def build_chunk_index(array_dir: Path, shape: tuple[int, ...], grid: tuple[int, ...], lead: int,
                      where: str) -> ChunkIndex | None:
    """Walk ``array_dir`` (the folder of one array) and index its chunk files, refusing special files.

    ``grid`` is the stored chunk (or shard) shape over all ``shape`` axes; ``lead`` the leading non-z axes.
    Returns None when the folder has too many files to index quickly.

    Raises:
        InputError: a chunk or metadata file is a FIFO, device or socket.
    """
    ndim = len(shape)
    total = math.prod(math.ceil(s / c) for s, c in zip(shape, grid))
    written = 0
    layers: set[int] = set()
    seen = 0
    root = str(array_dir)
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise InputError(f"{where}: cannot list {folder}: {exc.strerror or exc}") from exc
        for entry in entries:
            seen += 1
            if seen > MAX_INDEXED_FILES:
                return None
            if entry.is_file(follow_symlinks=False):  # the common case, answered by readdir without a syscall
                mode: int | None = stat.S_IFREG
            elif entry.is_dir(follow_symlinks=False):
                mode = stat.S_IFDIR
            else:  # a link (followed) or something special
                mode = _stat_mode(entry.path) if entry.is_symlink() else entry.stat(follow_symlinks=False).st_mode
            if mode is None:
                continue  # dangling link: the chunk is missing and reads as the fill value
            rel = entry.path[len(root) + 1:]
            kind = special_kind(mode)
            if kind is not None:
                raise InputError(f"{where}: Zarr file {rel} is {kind}, not a regular file")
            if stat.S_ISDIR(mode):
                if any(os.path.lexists(os.path.join(entry.path, n)) for n in ("zarr.json", ".zarray", ".zgroup")):
                    continue  # a nested array or group, not chunks of this one
                stack.append(entry.path)
                continue
            if entry.name in METADATA_FILES:
                continue
            coords = _chunk_coords(rel, ndim)
            if coords is None or any(c * g >= s for c, g, s in zip(coords, grid, shape)):
                continue  # not a chunk of this array, or outside its declared shape
            written += 1
            layers.add(coords[lead])
    return ChunkIndex(written, total, frozenset(layers), int(grid[lead]))


def _stat_mode(path: str) -> int | None:
    """``st_mode`` of what a link points to, or None when it dangles or loops."""
    try:
        return os.stat(path).st_mode
    except OSError:
        return None
