"""One in-place repair or undo of an input at a time; the lock leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.pipelines.inplace import backup_dir_for
from emrepair.pipelines.inplace_lock import in_place_lock, lock_path_for
from helpers import textured_stack


def _input(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = textured_stack(8, 48)
    data[3] = 0
    path = tmp_path / "in.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=data, chunks=(2, 48, 48), compression="gzip")
    return path, data


def _fix(*args: str) -> object:
    return CliRunner().invoke(app, ["fix", *args, "--model", "linear", "--no-progress"])


def test_a_second_in_place_run_or_undo_is_refused_while_one_holds_the_lock(tmp_path: Path) -> None:
    path, data = _input(tmp_path)
    with in_place_lock(path):
        for args in (("--in-place", "--sections", "3"), ("--undo",), ("--in-place", "--continue", "--sections", "3")):
            result = _fix(str(path), *args)
            assert result.exit_code == 1 and "another in-place repair or undo" in result.output, result.output
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["raw"][:], data)  # nothing was written while it was held
    assert not backup_dir_for(path).exists() and not lock_path_for(path).exists()


def test_a_killed_holder_leaves_a_lock_that_the_next_run_takes_over(tmp_path: Path) -> None:
    path, _data = _input(tmp_path)
    code = (f"import os; from emrepair.pipelines.inplace_lock import in_place_lock\n"
            f"with in_place_lock({str(path)!r}): os._exit(9)")
    subprocess.run([sys.executable, "-c", code], check=False)
    assert lock_path_for(path).exists()  # killed while holding it: the file stays, the flock is gone
    result = _fix(str(path), "--in-place", "--sections", "3")
    assert result.exit_code == 0, result.output
    assert not lock_path_for(path).exists()
    assert _fix(str(path), "--undo").exit_code == 0
    assert not lock_path_for(path).exists() and not backup_dir_for(path).exists()
