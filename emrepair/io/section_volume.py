"""Shared behaviour of the file-backed readers: shape/dtype accessors, bounds checks, iteration, context manager."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

from emrepair.errors import InputError
from emrepair.io.base import SUPPORTED_DTYPES, VolumeInfo

T = TypeVar("T")

# Largest z-slab (one chunk deep, whole section wide) a reader keeps decoded, so that reading the sections of a
# chunk one by one decodes each chunk once rather than once per section.
SLAB_CACHE_BYTES = 256 * 1024 * 1024


def slab_depth(info: VolumeInfo, limit: int = SLAB_CACHE_BYTES) -> int:
    """Sections to read (and cache) together: the chunk depth along z when that slab fits ``limit``, else 1."""
    if not info.chunks or info.chunks[0] <= 1:
        return 1
    nbytes = info.chunks[0] * info.shape[1] * info.shape[2] * np.dtype(info.dtype).itemsize
    return int(info.chunks[0]) if nbytes <= limit else 1


# Larger claims come from damaged metadata, not from EM: the biggest serial-section stacks have ~10^5 sections
# and sections of ~10^5 pixels a side. Refusing them up front avoids endless loops over absent chunks.
MAX_SECTIONS = 10**7
MAX_SECTION_SIDE = 10**6
MAX_SECTION_PIXELS = 2**36


def check_volume_shape(shape: tuple[int, ...], where: str) -> tuple[int, int, int]:
    """Return ``shape`` as a (z, y, x) tuple, or raise InputError for non-3-D, empty or implausibly large arrays."""
    if len(shape) != 3:
        raise InputError(f"{where}: expected a 3-D (z, y, x) volume, got shape {tuple(shape)}")
    if any(int(s) == 0 for s in shape):
        raise InputError(f"{where}: the volume is empty (shape {tuple(shape)})")
    z, y, x = (int(s) for s in shape)
    if z > MAX_SECTIONS or max(y, x) > MAX_SECTION_SIDE or y * x > MAX_SECTION_PIXELS:
        raise InputError(f"{where}: implausible shape {tuple(shape)} (damaged metadata?); at most {MAX_SECTIONS} "
                         f"sections of at most {MAX_SECTION_SIDE} pixels a side are supported")
    return (z, y, x)


def check_dtype(dtype: Any, where: str) -> np.dtype:
    """Return ``dtype`` as a native-order numpy dtype, or raise InputError when it is not uint8/uint16/float32."""
    dt = np.dtype(dtype)
    native = dt.newbyteorder("=")
    if native not in SUPPORTED_DTYPES:
        names = ", ".join(str(d) for d in SUPPORTED_DTYPES)
        raise InputError(f"{where}: unsupported dtype {dt} (supported: {names})")
    return native


# What decoders raise on damaged bytes: zlib/gzip (zlib.error), struct unpacking of truncated headers
# (struct.error), early ends (EOFError), and the OSError/ValueError/RuntimeError family of h5py, numcodecs,
# tifffile and Pillow.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, KeyError, RuntimeError, TypeError, IndexError, EOFError, struct.error, zlib.error,
)


def physical_memory() -> int | None:
    """This machine's RAM in bytes, or None when the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def size_text(nbytes: int) -> str:
    """A byte count for messages: ``3.2 GiB``, ``12.0 MiB`` or ``512 bytes``."""
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.1f} GiB"
    return f"{nbytes / 2**20:.1f} MiB" if nbytes >= 2**20 else f"{nbytes} bytes"


def guarded_read(where: str, read: Callable[[], T], nbytes: int = 0) -> T:
    """Run ``read`` and turn decoder errors from a damaged file into InputError naming ``where`` and the fault.

    ``nbytes`` (what the read decodes) is checked against the machine's memory first, so that a section too big
    to hold is named as such rather than ending in a bare "out of memory".
    """
    ram = physical_memory()
    if ram is not None and nbytes > ram:
        raise InputError(f"cannot read {where}: it needs {size_text(nbytes)}, more than this machine's "
                         f"{size_text(ram)} of memory (is the declared shape right?)")
    try:
        return read()
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"cannot read {where}: not enough memory for its {size_text(nbytes)}") from None
    except DECODE_ERRORS as exc:
        raise InputError(f"cannot read {where}: {describe_decode_error(exc)}") from exc


def describe_decode_error(exc: BaseException) -> str:
    """What a decoder's exception means, in one line: corrupt compressed data, a truncated file, or its message."""
    text = one_line(exc)
    if isinstance(exc, (zlib.error, gzip.BadGzipFile)) or "while decompressing" in text:
        return f"corrupt compressed data ({text})"
    if isinstance(exc, struct.error):
        return f"truncated or malformed data ({text})"
    if isinstance(exc, EOFError):
        return f"the file ends early ({text})"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return f"a file of the volume is missing ({exc.filename or text})"
    return text


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class SectionVolume:
    """Base class for lazy readers: subclasses set ``info`` and implement ``_read_section`` and ``_read_region``."""

    info: VolumeInfo
    _slab: tuple[int, np.ndarray] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(z, y, x) size of the volume."""
        return self.info.shape

    @property
    def dtype(self) -> np.dtype:
        """The stored numpy dtype."""
        return self.info.dtype

    def __len__(self) -> int:
        return self.info.shape[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        for z in range(len(self)):
            yield self.read_section(z)

    def _index(self, z: int) -> int:
        n = len(self)
        zi = int(z)
        if zi < 0:
            zi += n
        if not 0 <= zi < n:
            raise IndexError(f"section {z} out of range for a volume of {n} sections")
        return zi

    def read_section(self, z: int) -> np.ndarray:
        """Return section ``z`` as a new (y, x) array of the stored dtype; only that section is read."""
        zi = self._index(z)
        depth = slab_depth(self.info)
        plane = self.shape[1] * self.shape[2] * self.dtype.itemsize
        if depth == 1:
            arr = guarded_read(f"section {zi} of {self.info.path}", lambda: self._read_section(zi), plane)
            return np.ascontiguousarray(arr, dtype=self.dtype)
        z0 = zi - zi % depth
        if self._slab is None or self._slab[0] != z0:
            self._slab = None  # free the old slab before decoding the next
            full = slice(None)
            block = guarded_read(
                f"sections {z0}-{min(z0 + depth, len(self)) - 1} of {self.info.path}",
                lambda: self._read_region(slice(z0, min(z0 + depth, len(self))), full, full),
                plane * depth,
            )
            self._slab = (z0, np.asarray(block))
        return np.array(self._slab[1][zi - z0], dtype=self.dtype)

    def read_region(self, z: slice, y: slice, x: slice) -> np.ndarray:
        """Return the (z, y, x) sub-block given by three slices, as a new array of the stored dtype."""
        for s in (z, y, x):
            if not isinstance(s, slice):
                raise TypeError(f"read_region takes three slices, got {s!r}")
        size = [len(range(*s.indices(n))) for s, n in zip((z, y, x), self.shape)]
        arr = guarded_read(f"region of {self.info.path}", lambda: self._read_region(z, y, x),
                           size[0] * size[1] * size[2] * self.dtype.itemsize)
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _read_section(self, z: int) -> np.ndarray:
        raise NotImplementedError

    def _read_region(self, z: slice, y: slice, x: slice) -> np.ndarray:
        """Default: read the needed sections one at a time."""
        zs = range(*z.indices(len(self)))
        ny = len(range(*y.indices(self.shape[1])))
        nx = len(range(*x.indices(self.shape[2])))
        out = np.empty((len(zs), ny, nx), dtype=self.dtype)
        for i, zi in enumerate(zs):
            out[i] = self._read_section(zi)[y, x]
        return out

    def close(self) -> None:
        """Release the open file handle; subclasses extend this when they hold one."""
        self._slab = None

    def __enter__(self) -> "SectionVolume":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.info.path!r}, dataset={self.info.dataset!r}, shape={self.shape}, dtype={self.dtype})"
