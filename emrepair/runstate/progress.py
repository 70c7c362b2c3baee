"""The progress folder kept beside an output while it is being written: run record, lock and done markers.

Layout of ``<output>.emrepair-progress/``::

    run.json        fingerprint of the arguments and input, the repair plan, the layout of the outputs
    lock            taken (fcntl.flock) while the outputs are created or committed
    done/<a>-<b>    one empty file per finished block of sections a..b-1, made only after its writes were flushed
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator

from emrepair.errors import OutputError
from emrepair.io.section_volume import one_line
from emrepair.io.writers.base import remove_path

SUFFIX = ".emrepair-progress"


def progress_dir_for(output: str | Path) -> Path:
    """The progress folder of an output path."""
    out = Path(output).expanduser().absolute()
    return out.with_name(out.name + SUFFIX)


def block_name(start: int, stop: int) -> str:
    """Marker file name of the block of sections ``start..stop-1``."""
    return f"{start:09d}-{stop:09d}"


class ProgressDir:
    """Reads and writes one progress folder; every file operation failure becomes an OutputError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done_dir = path / "done"
        self.record_path = path / "run.json"

    def exists(self) -> bool:
        """Whether an earlier (or concurrent) run left a run record here."""
        return self.record_path.is_file()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the folder (created if needed) for the duration of the block."""
        with _os_errors(f"lock {self.path}"):
            self.path.mkdir(exist_ok=True)
            fd = os.open(self.path / "lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            with _os_errors(f"lock {self.path}"):
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def load(self) -> dict[str, Any] | None:
        """The run record, or None when there is none."""
        if not self.record_path.is_file():
            return None
        try:
            return json.loads(self.record_path.read_text())
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot read {self.record_path}: {one_line(exc)}; remove {self.path} to start again") from exc

    def save(self, record: dict[str, Any]) -> None:
        """Write the run record atomically (temporary file, fsync, rename)."""
        with _os_errors(f"write {self.record_path}"):
            self.path.mkdir(exist_ok=True)
            self.done_dir.mkdir(exist_ok=True)
            temp = self.record_path.with_suffix(f".tmp-{os.getpid()}")
            with open(temp, "w") as fh:
                json.dump(record, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, self.record_path)

    def mark_done(self, start: int, stop: int) -> None:
        """Record that sections ``start..stop-1`` are written and flushed."""
        with _os_errors(f"write {self.done_dir}"):
            (self.done_dir / block_name(start, stop)).touch()

    def done(self) -> set[tuple[int, int]]:
        """Every block recorded as done, as (start, stop) pairs."""
        if not self.done_dir.is_dir():
            return set()
        found = set()
        for entry in os.listdir(self.done_dir):
            start, _, stop = entry.partition("-")
            if start.isdigit() and stop.isdigit():
                found.add((int(start), int(stop)))
        return found

    def remove(self) -> None:
        """Delete the folder (after a commit, or to start again)."""
        with _os_errors(f"remove {self.path}"):
            remove_path(self.path)


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        hint = " (disk full)" if exc.errno == errno.ENOSPC else ""
        raise OutputError(f"cannot {what}: {one_line(exc)}{hint}") from exc
