"""The progress folder kept beside an output while it is being written: run record, lock and done markers.

Layout of ``<output>.emrepair-progress/``::

    run.json        run id, fingerprint of the arguments and input, the repair plan, the layout of the outputs
    lock            taken (fcntl.flock) while the outputs are created or committed
    writer.lock     held shared (flock) by every process writing the run, for the whole run (``writing``)
    writers/<host>-<pid>.json   who holds it: pid, host, share, start time (for messages and lock-less file systems)
    done/<a>-<b>    one empty file per finished block of sections a..b-1, made only after its writes were flushed
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from emrepair.callbacks import WarnCallback
from emrepair.errors import OutputError
from emrepair.io.section_volume import one_line
from emrepair.io.writers.base import owner_gone, owner_tag, remove_path

SUFFIX = ".emrepair-progress"


class RunDisplaced(OutputError):
    """Another run took over the output this run was writing; nothing of this run is committed."""


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

    @contextlib.contextmanager
    def writing(self, output: str, part: tuple[int, int] | None = None,
                note: WarnCallback | None = None) -> Iterator[None]:
        """Be one of the writers of the run for the duration of the block: hold ``writer.lock`` shared and list this
        process in ``writers/``. Shares of one run (``--part i/N`` with different i) write together; any other run
        while a writer is alive is refused (OutputError naming its pid and host). A lock left by a process that has
        ended is taken over (``note`` says so)."""
        with self.lock():
            with _os_errors(f"lock {self.path}"):
                (self.path / "writers").mkdir(exist_ok=True)
                fd = os.open(self.path / "writer.lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                self._join(fd, output, part, note)
            except BaseException:
                os.close(fd)
                raise
        entry = self.path / "writers" / f"{owner_tag()}.json"
        try:
            yield
        finally:
            if not self.path.is_dir():  # committed: the folder is gone already
                os.close(fd)
            else:
                with self.lock():
                    with contextlib.suppress(OSError):
                        entry.unlink()
                    os.close(fd)
                    with contextlib.suppress(OSError):
                        if not self.exists() and not os.listdir(self.path / "writers"):
                            remove_path(self.path)  # nothing of a run is left: no empty folder beside the output

    def _join(self, fd: int, output: str, part: tuple[int, int] | None, note: WarnCallback | None) -> None:
        alone = _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        writers = self._writers()
        stale = [w for w in writers if owner_gone(Path(w["file"]).stem)]  # entries are named <host>-<pid>.json
        live = [w for w in writers if w not in stale] if alone is not True else []
        for w in writers if alone is True else stale:
            with contextlib.suppress(OSError):
                os.unlink(w["file"])
        if alone is True and writers and note is not None:
            note(f"took over {output}: the run that was writing it ({_who(writers)}) has ended")
        if alone is False or live:
            shares = part is not None and live and all(w.get("part") and tuple(w["part"]) != tuple(part) for w in live)
            if not shares:
                raise OutputError(f"{output} is being written by another emrepair run ({_who(live) or 'a process'});"
                                  " one output takes one run at a time: wait for it to end, or stop it")
        if alone is not None:
            _flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a held exclusive lock becomes shared; shares join it
        entry = {"pid": os.getpid(), "host": socket.gethostname(),
                 "part": list(part) if part else None, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        with _os_errors(f"write {self.path}"):
            (self.path / "writers" / f"{owner_tag()}.json").write_text(json.dumps(entry))

    def _writers(self) -> list[dict[str, Any]]:
        folder = self.path / "writers"
        found = []
        for name in sorted(os.listdir(folder)) if folder.is_dir() else []:
            try:
                data = json.loads((folder / name).read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                found.append({**data, "file": str(folder / name)})
        return found

    def check_run(self, run_id: str | None) -> None:
        """Raise RunDisplaced unless the run record here is still the one of run ``run_id`` (None: not checked)."""
        if run_id is None:
            return
        record = self.load() if self.exists() else None
        if record is None or record.get("run_id") != run_id:
            raise RunDisplaced(f"this run was displaced: another run took over {self.path.name.removesuffix(SUFFIX)}"
                               " and discarded this one's work; nothing of this run was committed")

    def reset(self) -> None:
        """Forget the run (record and done markers) but keep the writers' lock, to start the output again."""
        with _os_errors(f"remove {self.path}"):
            remove_path(self.record_path)
            remove_path(self.done_dir)

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

    def mark_done(self, start: int, stop: int, run_id: str | None = None) -> None:
        """Record that sections ``start..stop-1`` are written and flushed (RunDisplaced when the run here is no
        longer run ``run_id``)."""
        self.check_run(run_id)
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


def _flock(fd: int, how: int) -> bool | None:
    """Try a flock: True when taken, False when another process holds it, None when the file system has none."""
    try:
        fcntl.flock(fd, how)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise OutputError(f"cannot lock the run's writer lock: {one_line(exc)}") from exc
    return True


def _who(writers: list[dict[str, Any]]) -> str:
    parts = [f"pid {w.get('pid')} on {w.get('host')}" + (f", share {w['part'][0]}/{w['part'][1]}" if w.get("part")
             else "") + f", since {w.get('started')}" for w in writers]
    return "; ".join(parts)


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        hint = " (disk full)" if exc.errno == errno.ENOSPC else ""
        raise OutputError(f"cannot {what}: {one_line(exc)}{hint}") from exc
