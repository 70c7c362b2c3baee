"""The writer contract shared by all formats: validated section/region writes into a temporary output,
provenance attributes, and an atomic ``commit`` (or ``abort``) that moves it into place (or removes it)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np

from emrepair.errors import OutputError
from emrepair.io.section_volume import one_line


# The hidden names a writer uses beside ``final``: ``.<name>[.emrepair.json].tmp-emrepair-<host>-<pid>`` while
# writing and ``.<name>.old-emrepair-<host>-<pid>`` for an old output set aside during the swap.
_LEFTOVER = re.compile(r"(\.emrepair\.json)?\.(tmp|old)-emrepair-([^-]+-\d+|\d+)(-reserve)?")


def owner_tag() -> str:
    """``<host>-<pid>`` of this process, as it appears in the hidden names of its writes."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def temp_path_for(final: Path, suffix: str = "") -> Path:
    """The hidden temporary name beside ``final``: ``.<name><suffix>.tmp-emrepair-<host>-<pid>``."""
    return final.with_name(f".{final.name}{suffix}.tmp-emrepair-{owner_tag()}")


def owner_gone(tag: str) -> bool:
    """Whether the process of a ``<host>-<pid>`` (or bare ``<pid>``) tag has ended; processes of other hosts count
    as running (nothing here can tell)."""
    host, _, pid = tag.rpartition("-")
    if not pid.isdigit() or (host and host != owner_tag().rpartition("-")[0]) or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def recover_leftovers(final: Path) -> None:
    """Clean up what a killed writer of ``final`` on this host left beside it: its temporary output goes, and an old
    output it had set aside goes too, or, when ``final`` is missing (killed between the two renames of the swap),
    is put back. Leftovers of live processes are left alone."""
    try:
        names = os.listdir(final.parent)
    except OSError:
        return
    prefix = f".{final.name}"
    temps, asides = [], []
    for name in names:
        match = _LEFTOVER.fullmatch(name[len(prefix):]) if name.startswith(prefix) else None
        if match and owner_gone(match.group(3)):
            aside = match.group(2) == "old" and not match.group(1) and not match.group(4)
            (asides if aside else temps).append(final.parent / name)
    try:
        for path in temps:
            remove_path(path)
        for aside in asides:
            if final.exists() or final.is_symlink():
                remove_path(aside)
            else:
                os.replace(aside, final)
    except OSError:
        pass  # a leftover that cannot be removed now is retried by the next run


def remove_path(path: Path) -> None:
    """Delete a file or folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class OutputTakenError(OutputError):
    """The final path was taken by something else while the output was written (no --overwrite)."""


def move_into_place(temp: Path, final: Path, replace: bool = True) -> None:
    """Replace ``final`` by ``temp``; an existing folder is renamed aside first and deleted only after the swap
    (put back when the swap fails; a later run's ``recover_leftovers`` handles a kill in between).

    With ``replace=False`` (an output created without ``--overwrite``) nothing that appeared at ``final`` while
    the output was written is replaced: a file is linked into place (which fails when the name exists) and a
    folder renamed (which fails onto a non-empty one); OutputTakenError then (``commit`` removes ``temp``)."""
    if not replace:
        try:
            if temp.is_dir():
                if final.exists() or final.is_symlink():
                    raise FileExistsError(errno.EEXIST, "File exists", str(final))
                os.rename(temp, final)
            else:
                os.link(temp, final, follow_symlinks=False)
                os.unlink(temp)
        except OSError as exc:  # FileExistsError, IsADirectoryError, or a non-empty folder in the way
            if exc.errno not in (errno.EEXIST, errno.EISDIR, errno.ENOTEMPTY):
                raise
            raise OutputTakenError(f"output exists: {final} appeared while this run wrote it (another run?); it was "
                                   f"not replaced") from exc
        return
    if final.is_dir() and not final.is_symlink():
        aside = final.with_name(f".{final.name}.old-emrepair-{owner_tag()}")
        remove_path(aside)
        os.replace(final, aside)
        try:
            os.replace(temp, final)
        except BaseException:
            os.replace(aside, final)  # the swap failed: the old output goes back (a kill here: recover_leftovers)
            raise
        remove_path(aside)
    else:
        if temp.is_dir() and (final.exists() or final.is_symlink()):
            final.unlink()  # a file in the way of a folder output (only reached with overwrite)
        os.replace(temp, final)


class VolumeWriter:
    """Base class for the format writers. Subclasses implement ``_open``, ``_write``, ``_finish`` and ``_close``.

    Data goes to ``temp_path``; ``commit`` finishes it (attributes included) and renames it to ``path``.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int, int],
        dtype: np.dtype,
        voxel_size: tuple[float, float, float] | None,
        chunks: tuple[int, int, int],
        compression: str | None,
        dataset: str,
        labels: bool,
        attrs: dict[str, Any],
        temp_path: Path | None = None,
        resume: bool = False,
    ) -> None:
        self.path = path
        self.temp_path = temp_path if temp_path is not None else temp_path_for(path)
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.voxel_size = voxel_size
        self.chunks = chunks
        self.compression = compression
        self.dataset = dataset
        self.labels = labels
        self.attrs: dict[str, Any] = dict(attrs)
        self._state = "open"
        # A named temporary output (a resumable run's partial copy) outlives an interrupted commit: finishing an
        # OME-Zarr (its pyramid) takes a while, and the data written before it are worth keeping.
        self.keep_on_interrupt = temp_path is not None
        # False for an output created without --overwrite: commit then never replaces what appeared meanwhile.
        self.replace_existing = True
        self.resumed = bool(resume and (self.temp_path.exists() or self.temp_path.is_symlink()))
        if self.resumed:
            # Reopen a temporary output left by an interrupted run; a failure leaves it untouched.
            try:
                self._guard("reopen the partial output of", self._reopen)
            except BaseException:
                self._state = "released"
                self._close()
                raise
            return
        remove_path(self.temp_path)  # a leftover from a crashed run with the same pid
        try:
            self._guard("create", self._open)
        except BaseException:
            self.abort()
            raise

    # -- public API -------------------------------------------------------------------------------------------

    def write_section(self, z: int, arr: np.ndarray) -> None:
        """Write one (y, x) section at index ``z``."""
        if not 0 <= int(z) < self.shape[0]:
            raise IndexError(f"section {z} out of range for an output of {self.shape[0]} sections")
        zi = int(z)
        self.write_region(slice(zi, zi + 1), slice(None), slice(None), np.asarray(arr)[None])

    def write_region(self, z: slice, y: slice, x: slice, arr: np.ndarray) -> None:
        """Write a (z, y, x) block at the place given by three step-1 slices."""
        self._check_open()
        region = tuple(s.indices(n) for s, n in zip((z, y, x), self.shape))
        if any(step != 1 for _, _, step in region):
            raise ValueError("write_region takes slices with step 1")
        expected = tuple(max(0, stop - start) for start, stop, _ in region)
        data = np.asarray(arr)
        if data.shape != expected:
            raise ValueError(f"write_region: array of shape {data.shape} does not fit the region {expected}")
        if data.dtype != self.dtype:
            if not np.can_cast(data.dtype, self.dtype, "safe"):
                raise TypeError(f"cannot store {data.dtype} data in a {self.dtype} output without loss; convert first")
            data = data.astype(self.dtype)
        bounds = tuple(slice(start, stop) for start, stop, _ in region)
        self._guard("write", lambda: self._write(bounds[0], bounds[1], bounds[2], data))

    def set_attrs(self, attrs: dict[str, Any]) -> None:
        """Add (or replace) top-level attributes, e.g. ``{"emrepair": {...provenance...}}``; written at commit."""
        self._check_open()
        self.attrs.update(attrs)

    def commit(self) -> None:
        """Finish the temporary output and move it atomically to its final path."""
        self._check_open()
        try:
            self._guard("finish", self._finish)
            self._guard("move into place", self._move)
        except OutputTakenError:  # another run's output is there: this one is not kept
            self.abort()
            raise
        except OutputError:  # a full disk while finishing: the data are written, keep them for a resumed writer
            self._state = "released"
            self._close()
            raise
        except KeyboardInterrupt:  # Ctrl-C while finishing: the same for a resumable run's partial output
            if not self.keep_on_interrupt:
                self.abort()
                raise
            self._state = "released"
            self._close()
            raise
        except BaseException:
            self.abort()
            raise
        self._state = "committed"

    def flush(self) -> None:
        """Push every write made so far to the file system (buffered sections included)."""
        self._check_open()
        self._guard("write", self._flush_data)

    def release(self) -> None:
        """Flush and close handles but keep the temporary output, for a later ``resume=True`` writer to finish."""
        if self._state != "open":
            return
        try:
            self._guard("write", self._flush_data)
        finally:
            self._state = "released"
            self._close()

    def abort(self) -> None:
        """Discard the temporary output; the final path is left as it was."""
        if self._state != "open":
            return
        self._state = "aborted"
        try:
            self._close()
        finally:
            for p in self._temp_paths():
                remove_path(p)

    def __enter__(self) -> "VolumeWriter":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    # -- for subclasses ---------------------------------------------------------------------------------------

    def _open(self) -> None:
        raise NotImplementedError

    def _write(self, z: slice, y: slice, x: slice, data: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Write attributes, flush and close handles (the temporary output is then complete)."""
        raise NotImplementedError

    def _close(self) -> None:
        """Close handles without finishing (used by abort and release)."""

    def _reopen(self) -> None:
        """Open an existing temporary output for more writes (``resume=True``); formats that cannot resume raise."""
        raise OutputError(f"{type(self).__name__} outputs cannot be resumed")

    def _flush_data(self) -> None:
        """Write buffered data through to the file system (default: nothing is buffered)."""

    def _temp_paths(self) -> list[Path]:
        return [self.temp_path]

    def _move(self) -> None:
        move_into_place(self.temp_path, self.path, replace=self.replace_existing)

    # -- helpers ----------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"output {self.path} is already {self._state}")

    def _guard(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except OSError as exc:
            raise OutputError(f"cannot {what} {self.path}: {one_line(exc)}") from exc
