"""Free disk space: refuse a run that cannot fit before it starts, and keep a reserve for a clean stop.

``check_free_space`` compares an output's estimated size with the free space of its file system (the estimate
and the measured compression ratios are in docs/io.md); ``check_outputs_space`` does it for all the outputs of a
run at once, summed per file system, before any work. ``SpaceReserve`` holds a preallocated file beside an
output; a writer that meets a full disk deletes it, so that it can still flush and close its partial output
(HDF5 cannot close a file cleanly once a write has failed for want of space, and dies at exit instead).
"""

from __future__ import annotations

import errno
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emrepair.errors import OutputError
from emrepair.io.ome import pyramid_shapes

# Compressed (HDF5, Zarr) outputs are estimated at this fraction of their raw size: gzip keeps 72-98 % of the
# bytes of the real EM stacks measured (docs/io.md), so the smallest measured ratio, rounded down.
COMPRESSED_RATIO = 0.7
# uint8 label volumes are mostly zeros and compress far better; a mask output is estimated at this fraction.
LABELS_RATIO = 0.05
MARGIN_BYTES = 1 << 20
SKIP_ENV = "EMREPAIR_NO_SPACE_CHECK"
COMPRESSED_FORMATS = ("hdf5", "zarr", "ome-zarr")


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**28 else f"{nbytes / 2**20:.1f} MiB"


def stored_pixels(fmt: str, shape: tuple[int, ...]) -> int:
    """Pixels an output of ``fmt`` stores: every level of an ``.ome.zarr`` pyramid (``io.ome.pyramid_shapes``,
    about a third more than level 0), else those of ``shape``."""
    if fmt == "ome-zarr" and len(shape) == 3:
        return sum(math.prod(level) for level in pyramid_shapes(tuple(int(s) for s in shape)))  # type: ignore[arg-type]
    return math.prod(int(s) for s in shape)


def estimated_bytes(fmt: str, shape: tuple[int, ...], dtype: object, labels: bool = False,
                    embedded_labels: bool = False) -> int:
    """The bytes an output of ``fmt`` ("hdf5", "zarr", "ome-zarr", "tiff", "image-folder") will take on disk.

    An ``.ome.zarr`` output counts every level of its pyramid; ``embedded_labels`` adds the uint8 copy of the masks
    that fix and upsample-z put inside such an image (``labels/synthetic``, with the same levels).
    """
    pixels = stored_pixels(fmt, shape)
    raw = pixels * np.dtype(dtype).itemsize  # type: ignore[call-overload]
    if fmt in COMPRESSED_FORMATS:
        raw = raw * (LABELS_RATIO if labels else COMPRESSED_RATIO)
    if embedded_labels and fmt == "ome-zarr":
        raw += pixels * LABELS_RATIO
    return int(raw) + MARGIN_BYTES


def used_bytes(path: Path, max_files: int = 100_000) -> int | None:
    """Bytes already allocated under ``path`` (a file or a folder tree; 0 when it does not exist), or None for a
    folder of more than ``max_files`` files (counting them would take longer than the check is worth)."""
    try:
        if path.is_file():
            return path.stat().st_blocks * 512
        total = count = 0
        for root, _, files in os.walk(path):
            count += len(files)
            if count > max_files:
                return None
            for name in files:
                try:
                    total += (Path(root) / name).stat().st_blocks * 512
                except OSError:
                    pass
        return total
    except OSError:
        return 0


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the file system of ``folder`` (None when it cannot be asked)."""
    try:
        return int(shutil.disk_usage(folder).free)
    except OSError:
        return None


def check_free_space(target: Path, needed: int, what: str = "the output", already: int = 0,
                     names: str | None = None) -> None:
    """Raise OutputError when the file system of ``target`` has less than ``needed - already`` bytes free.

    ``already`` counts what a resumed output holds already; ``names`` replaces ``target`` in the message.
    Setting EMREPAIR_NO_SPACE_CHECK=1 skips the check (for file systems that report free space wrongly).
    """
    if os.environ.get(SKIP_ENV):
        return
    folder = target if target.is_dir() else target.parent
    free = free_bytes(folder)
    missing = needed - already
    if free is not None and free < missing:
        it = "they need" if what.endswith("outputs") else "it needs"
        raise OutputError(f"not enough free space for {what} {names or target}: {it} about {_gib(missing)}, "
                          f"{_gib(free)} are free on {folder} (set {SKIP_ENV}=1 to try anyway)")


def check_output_space(target: Path, fmt: str, shape: tuple[int, ...], dtype: object, labels: bool = False,
                       partial: Path | None = None) -> None:
    """The free-space check ``create_output`` runs before it creates (or resumes, into ``partial``) an output."""
    already = used_bytes(partial) if partial is not None else 0
    if already is not None:  # None: a huge partial output, resumed without a check
        check_free_space(target, estimated_bytes(fmt, shape, dtype, labels), "the output", already)


@dataclass(frozen=True)
class PlannedOutput:
    """An output a run is about to write: its path, format (``io.create.output_format``), shape and dtype; whether
    it is a label volume or an image with the masks embedded; and, for a resumed run, its partial copy."""

    path: Path
    fmt: str
    shape: tuple[int, ...]
    dtype: object
    labels: bool = False
    embedded_labels: bool = False
    partial: Path | None = None


def _file_system(path: Path) -> tuple[int, Path] | None:
    """(device id, folder) of the file system an output at ``path`` lands on; None when it cannot be asked."""
    folder = path if path.is_dir() else path.parent
    try:
        return os.stat(folder).st_dev, folder
    except OSError:
        return None


def check_outputs_space(outputs: list[PlannedOutput]) -> None:
    """Raise OutputError when the outputs of a run will not fit: their estimated sizes are summed per file system
    (an image, its pyramid, its embedded masks and a separate masks volume on one disk count together), less what
    resumed partial copies hold already. EMREPAIR_NO_SPACE_CHECK=1 skips the check."""
    if os.environ.get(SKIP_ENV):
        return
    groups: dict[int, tuple[Path, list[PlannedOutput]]] = {}
    for out in outputs:
        where = _file_system(out.path)
        if where is not None:
            groups.setdefault(where[0], (where[1], []))[1].append(out)
    for folder, members in groups.values():
        held = [used_bytes(o.partial) if o.partial is not None else 0 for o in members]
        if any(h is None for h in held):
            continue  # a huge partial output, resumed without a check
        needed = sum(estimated_bytes(o.fmt, o.shape, o.dtype, o.labels, o.embedded_labels) for o in members)
        names = " and ".join(str(o.path) for o in members)
        what = "the output" if len(members) == 1 else "the outputs"
        check_free_space(folder, needed, what, sum(h or 0 for h in held), names)


def short_write_as_enospc(exc: OSError) -> OSError:
    """numpy and tifffile report a write cut short by a full disk as "N requested and M written", without an
    errno; that becomes ENOSPC ("No space left on device"). Any other OSError is returned as it is."""
    if exc.errno is None and "requested and" in str(exc) and "written" in str(exc):
        return OSError(errno.ENOSPC, f"No space left on device ({exc})")
    return exc


def _write_zeros(fh: object, nbytes: int) -> None:
    block = bytes(1 << 20)
    while nbytes > 0:
        fh.write(block[:min(nbytes, len(block))])  # type: ignore[attr-defined]
        nbytes -= len(block)


class SpaceReserve:
    """A preallocated hidden file of ``nbytes`` at ``path``; ``release()`` deletes it to free its space."""

    def __init__(self, path: Path, nbytes: int) -> None:
        self.path = path
        self.held = False
        try:
            with open(path, "wb") as fh:
                try:
                    os.posix_fallocate(fh.fileno(), 0, max(1, int(nbytes)))
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                        raise
                    _write_zeros(fh, int(nbytes))  # a file system without fallocate
                fh.flush()
                os.fsync(fh.fileno())
            self.held = True
        except OSError as exc:
            self._remove()
            raise OutputError(f"not enough free space beside {path.parent} to reserve {_gib(nbytes)} for a clean "
                              f"stop: {exc.strerror or exc}") from exc

    def release(self) -> None:
        """Delete the reserve (idempotent)."""
        self.held = False
        self._remove()

    def _remove(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass
