"""A kill at every write and rename of ``fix --in-place`` (and of ``--undo``) never loses a section.

Each kill is a forked child that the test hook in emrepair.io.writers.inplace ends with os._exit at its N-th
write or rename, as a SIGKILL would (no cleanup runs). After each one the input must be unchanged with no
complete backup, or have a complete backup that ``--undo`` restores bit for bit and ``--continue`` finishes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import pytest
import tifffile

from emrepair.io.writers import inplace as inplace_writer
from emrepair.pipelines.fix import FixOptions
from emrepair.pipelines.inplace import backup_dir_for, run_fix_in_place, undo_in_place
from emrepair.pipelines.inplace_backup import backup_state
from helpers import read_all, textured_stack, write_zarr

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def options(**extra: Any) -> FixOptions:
    return FixOptions(model="linear", fold_model="none", sections=extra.pop("sections"), device="cpu", **extra)


def killed_at(n: int, fn: Callable[[], Any]) -> int:
    """Run ``fn`` in a forked child that dies at its n-th crash point; its exit status (137 killed, 0 finished)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 3
        try:
            os.environ[inplace_writer.KILL_ENV] = str(n)
            inplace_writer.reset_crash_points()
            fn()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def snapshot(src: Path, kind: str) -> Any:
    """What must come back bit for bit: every file's bytes (Zarr, TIFF folder) or the pixels (HDF5)."""
    if kind == "hdf5":
        return read_all(src)
    return {p.relative_to(src): p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()}


def assert_same(src: Path, kind: str, expected: Any) -> None:
    got = snapshot(src, kind)
    if kind == "hdf5":
        np.testing.assert_array_equal(got, expected)
    else:
        assert sorted(got) == sorted(expected)
        assert all(got[k] == expected[k] for k in expected), [k for k in expected if got[k] != expected[k]]


def make(tmp: Path, kind: str, depth: int) -> tuple[Path, list[int]]:
    tmp.mkdir(parents=True)
    data = textured_stack(40 if depth == 33 else 12, 24)
    sections = [5, 34] if depth == 33 else [5, 6]
    for z in sections:
        data[z] = 0
    if kind == "hdf5":
        with h5py.File(tmp / "in.h5", "w") as f:
            f.create_dataset("raw", data=data, chunks=(depth, 16, 16), compression="gzip")
        return tmp / "in.h5", sections
    if kind == "zarr":
        return Path(write_zarr(tmp / "in.zarr", data, chunks=(depth, 16, 16))), sections
    folder = tmp / "sections"
    folder.mkdir()
    for z, section in enumerate(data):  # compressed, with a description: --undo must keep both
        tifffile.imwrite(folder / f"s{z:03d}.tif", section, compression="zlib", description=f"section {z}")
    return folder, sections


def copy_state(src: Path, dst_dir: Path) -> Path:
    """Copy an input and its backup into ``dst_dir``; the copy of the input."""
    dst_dir.mkdir(parents=True)
    for p in (src, backup_dir_for(src)):
        if p.is_dir():
            shutil.copytree(p, dst_dir / p.name)
        elif p.exists():
            shutil.copy2(p, dst_dir / p.name)
    return dst_dir / src.name


@pytest.mark.parametrize("kind,depth", [("hdf5", 1), ("hdf5", 4), ("hdf5", 33), ("zarr", 4), ("folder", 1)])
def test_kill_at_every_write_and_rename(tmp_path: Path, kind: str, depth: int) -> None:
    src, sections = make(tmp_path / "orig", kind, depth)
    original = snapshot(src, kind)
    done = copy_state(src, tmp_path / "done")
    run_fix_in_place(str(done), options(sections=sections))
    repaired = read_all(done)
    assert not np.array_equal(repaired, read_all(src))
    kills = 0
    for n in range(1, 200):
        work = copy_state(src, tmp_path / f"k{n}")
        code = killed_at(n, lambda: run_fix_in_place(str(work), options(sections=sections)))
        if code == 0:
            np.testing.assert_array_equal(read_all(work), repaired)  # past the last crash point: finished
            break
        assert code == inplace_writer.KILLED_EXIT
        kills += 1
        state = backup_state(backup_dir_for(work))
        if state != "complete":
            assert_same(work, kind, original)  # nothing was written before the backup was complete
        if state == "complete" or n % 8 == 1:  # (killed while backing up, every 8th kill is carried on too)
            again = copy_state(work, tmp_path / f"c{n}")
            run_fix_in_place(str(again), options(sections=sections, continue_run=state != "none"))
            np.testing.assert_array_equal(read_all(again), repaired)
            undo_in_place(str(again))
            assert_same(again, kind, original)
        if state != "none":
            undo_in_place(str(work))
            assert not backup_dir_for(work).exists()
        assert_same(work, kind, original)
    else:
        pytest.fail("the run never finished")
    assert kills >= len(sections) + 3  # intent, backup files, manifest and the writes were all crash points


@pytest.mark.parametrize("kind,depth", [("hdf5", 4), ("folder", 1)])
def test_kill_during_undo(tmp_path: Path, kind: str, depth: int) -> None:
    src, sections = make(tmp_path / "orig", kind, depth)
    original = snapshot(src, kind)
    run_fix_in_place(str(src), options(sections=sections))
    for n in range(1, 200):
        work = copy_state(src, tmp_path / f"u{n}")
        code = killed_at(n, lambda: undo_in_place(str(work)))
        if code == 0:
            break
        assert code == inplace_writer.KILLED_EXIT
        assert backup_state(backup_dir_for(work)) != "none"
        undo_in_place(str(work))
        assert not backup_dir_for(work).exists()
        assert_same(work, kind, original)
    else:
        pytest.fail("the undo never finished")
    assert_same(work, kind, original)
    assert n >= 2  # killed at least once
