"""``--in-place`` keeps a backup of every replaced section; ``--undo`` restores the input bit-identically."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.pipelines.inplace import backup_dir_for
from helpers import read_all, textured_stack, write_zarr


def cli(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


def make_input(tmp_path: Path, kind: str, data: np.ndarray) -> str:
    if kind == "zarr":
        return write_zarr(tmp_path / "in.zarr", data, chunks=(4, 32, 32))
    if kind == "hdf5":
        with h5py.File(tmp_path / "in.h5", "w") as f:
            f.create_dataset("raw", data=data, chunks=(1, 48, 48), compression="gzip")
        return str(tmp_path / "in.h5")
    folder = tmp_path / "sections"
    folder.mkdir()
    for z, section in enumerate(data):
        tifffile.imwrite(folder / f"s{z:03d}.tif", section)
    return str(folder)


@pytest.mark.parametrize("kind", ["zarr", "hdf5", "folder"])
def test_in_place_repair_then_undo_restores_bit_identically(tmp_path: Path, kind: str) -> None:
    data = textured_stack(10, 48)
    data[4] = 0
    src = make_input(tmp_path, kind, data)
    fixed = tmp_path / "fixed.zarr"
    assert cli("fix", src, "-o", str(fixed), "--sections", "4,7", "--model", "linear", "--no-progress").exit_code == 0
    result = cli("fix", src, "--in-place", "--sections", "4,7", "--model", "linear", "--no-progress")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_all(src), read_all(fixed))
    assert backup_dir_for(src).is_dir()
    again = cli("fix", src, "--in-place", "--sections", "4", "--model", "linear", "--no-progress")
    assert again.exit_code == 1 and "--undo" in again.stderr
    undone = cli("fix", src, "--undo")
    assert undone.exit_code == 0, undone.output
    np.testing.assert_array_equal(read_all(src), data)
    assert not backup_dir_for(src).exists()
    assert cli("fix", src, "--undo").exit_code == 2


def test_in_place_refusals(tmp_path: Path) -> None:
    data = textured_stack(6, 32)
    tifffile.imwrite(tmp_path / "stack.tif", data)
    src = str(tmp_path / "stack.tif")
    result = cli("fix", src, "--in-place", "--sections", "2", "--model", "linear", "--no-progress")
    assert result.exit_code == 2 and "-o" in result.stderr and not backup_dir_for(src).exists()
    np.testing.assert_array_equal(tifffile.imread(src), data)
    zsrc = write_zarr(tmp_path / "in.zarr", data)
    both = cli("fix", zsrc, "--in-place", "-o", str(tmp_path / "x.zarr"), "--sections", "2", "--model", "linear")
    assert both.exit_code == 2
    same = cli("fix", zsrc, "-o", zsrc, "--sections", "2", "--model", "linear", "--no-progress")
    assert same.exit_code == 1 and "input" in same.stderr


def test_damaged_backup_is_not_restored(tmp_path: Path) -> None:
    data = textured_stack(6, 32)
    src = write_zarr(tmp_path / "in.zarr", data)
    assert cli("fix", src, "--in-place", "--sections", "2", "--model", "linear", "--no-progress").exit_code == 0
    repaired = read_all(src)
    backup = backup_dir_for(src) / "z000002.npy"
    backup.write_bytes(backup.read_bytes()[:-10] + b"0123456789")
    result = cli("fix", src, "--undo")
    assert result.exit_code == 1 and "damaged" in result.stderr
    np.testing.assert_array_equal(read_all(src), repaired)
