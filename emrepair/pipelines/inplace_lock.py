"""One in-place repair (or undo) of an input at a time: an exclusive lock beside the input for the whole run.

``fix --in-place``, ``--continue`` and ``--undo`` of one input all take ``.<name>.emrepair-inplace.lock`` beside
it (``fcntl.flock``, so a killed process never leaves it held) and remove it when they end. A second one is
refused at once with the holder's pid and host; a file left by a killed run is simply taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from emrepair.errors import OutputError
from emrepair.io.section_volume import one_line


def lock_path_for(container: str | Path) -> Path:
    """The lock file of an input (beside its file or folder)."""
    path = Path(container).expanduser().absolute()
    return path.with_name(f".{path.name}.emrepair-inplace.lock")


@contextlib.contextmanager
def in_place_lock(container: str | Path) -> Iterator[None]:
    """Hold the input's in-place lock for the ``with`` block; OutputError when another run holds it."""
    lock = lock_path_for(container)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot take the in-place lock {lock}: {one_line(exc)}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise OutputError(f"another in-place repair or undo of {container} is running "
                              f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}); "
                              f"wait for it to end") from None
        except OSError:
            break  # a file system without flock: go on unlocked, as before
        try:
            same = os.fstat(fd).st_ino == os.stat(lock, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the file was removed by the run that held it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


def _read(fd: int) -> dict[str, object]:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
