"""Path syntax: which format a path names, and where the container ends and the inner dataset path begins."""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from emrepair.errors import InputError

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
ZARR_SUFFIXES = (".zarr",)
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".tif", ".tiff", ".png")


@dataclass(frozen=True)
class Location:
    """A volume address: the container on disk, its format family, and the path inside it (or None)."""

    container: Path
    family: str  # "hdf5", "zarr", "tiff" or "image-folder"
    inner: str | None


def special_kind(mode: int) -> str | None:
    """What a non-regular, non-folder file is ("a FIFO", "a device", "a socket"), or None for files and folders."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def entry_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a regular file (dangling or looping link, FIFO, device, socket, folder,
    no permission), or None when it is a regular file. Never opens the file, so it cannot block."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "is a dangling symbolic link" if os.path.islink(path) else "does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "cannot be accessed (permission denied)"
        return f"cannot be accessed ({exc.strerror or exc})"
    kind = special_kind(st.st_mode)
    if kind is not None:
        return f"is {kind}, not a regular file"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not an image file"
    if not os.access(path, os.R_OK):
        return "is not readable (permission denied)"
    return None


def require_regular(path: Path, what: str = "") -> None:
    """Raise InputError unless ``path`` is a readable regular file (checked without opening it)."""
    problem = entry_problem(path)
    if problem is not None:
        raise InputError(f"{what}{path} {problem}")


def natural_key(name: str) -> list[object]:
    """Sort key that orders embedded numbers by value: 1, 2, ..., 10 rather than 1, 10, 2."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def is_zarr_dir(path: Path) -> bool:
    """True when ``path`` is a folder holding Zarr v2 or v3 metadata."""
    return os.path.isdir(path) and any(os.path.lexists(path / f) for f in ("zarr.json", ".zgroup", ".zarray"))


def _join_inner(a: str | None, b: str | None, where: str) -> str | None:
    a = a.strip("/") if a else None
    b = b.strip("/") if b else None
    if a and b and a != b:
        raise InputError(f"{where}: the path names dataset '{a}' but dataset='{b}' was also given")
    return a or b or None


def locate(path: str | Path, dataset: str | None = None) -> Location:
    """Resolve a user path such as ``stack.h5/volumes/raw`` or ``vol.zarr/raw`` into a Location.

    The path is split at the first component ending in an HDF5 or Zarr suffix; the rest is the inner path.
    Raises InputError when nothing exists at the path or its format is not recognised.
    """
    p = Path(path).expanduser()
    parts = p.parts
    for i in range(1, len(parts) + 1):
        head = Path(*parts[:i])
        rest = "/".join(parts[i:]) or None
        name = head.name.lower()
        _refuse_special(head)
        if name.endswith(HDF5_SUFFIXES) and os.path.isfile(head):
            return Location(head, "hdf5", _join_inner(rest, dataset, str(p)))
        if name.endswith(ZARR_SUFFIXES) and os.path.isdir(head):
            return Location(head, "zarr", _join_inner(rest, dataset, str(p)))
    if not _exists(p):
        if os.path.islink(p):
            raise InputError(f"input {p} is a dangling symbolic link")
        raise InputError(f"input not found: {p}")
    name = p.name.lower()
    if p.is_dir():
        if is_zarr_dir(p):
            return Location(p, "zarr", _join_inner(None, dataset, str(p)))
        return Location(p, "image-folder", None)
    if not os.access(p, os.R_OK):
        raise InputError(f"input {p} is not readable (permission denied)")
    if name.endswith(TIFF_SUFFIXES):
        return Location(p, "tiff", None)
    if _looks_like_hdf5(p):
        return Location(p, "hdf5", _join_inner(None, dataset, str(p)))
    raise InputError(
        f"unknown input format: {p} (expected .h5/.hdf5, .zarr, .ome.zarr, .tif/.tiff or a folder of section images)"
    )


def _exists(path: Path) -> bool:
    """Whether something is at ``path`` (following links); a folder we may not search counts as an error."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"input {path} is a symbolic link loop") from None
        raise InputError(f"cannot access input {path}: {exc.strerror or exc}") from None
    return True


def _refuse_special(path: Path) -> None:
    """InputError when ``path`` exists and is a FIFO, device or socket (reading those blocks or never ends)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # absent or inaccessible: reported below with the whole path
    kind = special_kind(mode)
    if kind is not None:
        raise InputError(f"input {path} is {kind}, not a regular file")


def _looks_like_hdf5(path: Path) -> bool:
    """True when the file starts with the HDF5 signature (for HDF5 files with an unusual extension)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False
