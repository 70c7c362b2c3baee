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


class open_zarr:
    """A Zarr array opened for writing (to change an input behind emrepair's back)."""

    def __init__(self, path: str) -> None:
        import zarr

        self.array = zarr.open_array(path, mode="r+")

    def __enter__(self) -> object:
        return self.array

    def __exit__(self, *exc: object) -> None:
        pass


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


def test_torn_chunk_is_rewritten_whole_by_undo_and_continue(tmp_path: Path) -> None:
    """A kill inside an HDF5 write can leave a chunk unreadable; its good sections come back from the backup."""
    data = textured_stack(12, 32)
    data[2] = 0
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f.create_dataset("raw", data=data, chunks=(4, 16, 16), compression="gzip")
    src = str(tmp_path / "in.h5")
    fixed = tmp_path / "fixed.zarr"
    assert cli("fix", src, "-o", str(fixed), "--sections", "2", "--model", "linear", "--no-progress").exit_code == 0
    for step in ("undo", "continue"):
        assert cli("fix", src, "--in-place", "--sections", "2", "--model", "linear", "--no-progress").exit_code == 0
        assert sorted(int(p.stem[1:]) for p in backup_dir_for(src).glob("z*.npy")) == [0, 1, 2, 3]
        with h5py.File(src, "r+") as f:  # tear the chunk holding sections 0-3
            f["raw"].id.write_direct_chunk((0, 0, 0), b"torn" * 50)
        with h5py.File(src, "r") as f, pytest.raises(OSError):
            f["raw"][1]
        if step == "undo":
            assert cli("fix", src, "--undo").exit_code == 0
            np.testing.assert_array_equal(read_all(src), data)
        else:
            result = cli("fix", src, "--in-place", "--continue", "--sections", "2", "--model", "linear",
                         "--no-progress")
            assert result.exit_code == 0, result.output
            np.testing.assert_array_equal(read_all(src), read_all(fixed))


def test_torn_edge_chunk_is_rewritten_without_being_read(tmp_path: Path) -> None:
    """HDF5 reads a chunk at the volume's edge before writing it: a torn one is reset first, then restored."""
    data = textured_stack(10, 24, "uint16")
    data[8] = 0
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f.create_dataset("raw", data=data, chunks=(4, 16, 16), compression="gzip", shuffle=True)
    src = str(tmp_path / "in.h5")
    assert cli("fix", src, "--in-place", "--sections", "8", "--model", "linear", "--no-progress").exit_code == 0
    with h5py.File(src, "r+") as f:
        for offset in ((8, 16, 16), (8, 0, 0)):  # partial in z, and in z and both y, x
            f["raw"].id.write_direct_chunk(offset, b"torn" * 10)
    assert cli("fix", src, "--undo").exit_code == 0
    np.testing.assert_array_equal(read_all(src), data)
    with h5py.File(src) as f:  # every chunk stored compressed again
        assert {f["raw"].id.get_chunk_info(i).filter_mask for i in range(f["raw"].id.get_num_chunks())} == {0}


def test_continue_after_a_partial_write_plans_from_the_restored_input(tmp_path: Path) -> None:
    """Killed between two repaired runs, without --sections: detection alone would no longer see the first."""
    from emrepair.pipelines.fix import FixOptions
    from emrepair.pipelines.inplace import run_fix_in_place
    from emrepair.pipelines.inplace_backup import backup_state
    from test_inplace_kill import copy_state, killed_at

    data = textured_stack(12, 48)
    data[3] = 0
    data[8] = 0
    src = Path(write_zarr(tmp_path / "orig" / "in.zarr", data, chunks=(1, 48, 48)))
    fixed = tmp_path / "fixed.zarr"
    assert cli("fix", str(src), "-o", str(fixed), "--model", "linear", "--no-progress").exit_code == 0
    expected = read_all(fixed)
    assert not np.array_equal(expected[3], data[3]) and not np.array_equal(expected[8], data[8])
    opts = FixOptions(model="linear", fold_model="none", device="cpu")
    for n in range(1, 100):
        work = copy_state(src, tmp_path / f"k{n}")
        assert killed_at(n, lambda: run_fix_in_place(str(work), opts)) != 0, "never killed after a partial write"
        now = read_all(work)
        if backup_state(backup_dir_for(work)) == "complete" and not np.array_equal(now[3], data[3]):
            break
    np.testing.assert_array_equal(now[8], data[8])  # the first run is repaired, the second not yet
    refused = cli("fix", str(work), "--in-place", "--model", "linear", "--no-progress")
    assert refused.exit_code == 1 and "--continue" in refused.stderr
    result = cli("fix", str(work), "--in-place", "--continue", "--model", "linear", "--no-progress")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_all(work), expected)
    assert cli("fix", str(work), "--undo").exit_code == 0
    np.testing.assert_array_equal(read_all(work), data)


def test_incomplete_backup_is_cleared_only_when_the_input_is_unchanged(tmp_path: Path) -> None:
    data = textured_stack(8, 32)
    src = write_zarr(tmp_path / "in.zarr", data)
    assert cli("fix", src, "--in-place", "--sections", "2", "--model", "linear", "--no-progress").exit_code == 0
    assert cli("fix", src, "--undo").exit_code == 0
    assert cli("fix", src, "--in-place", "--sections", "2", "--model", "linear", "--no-progress").exit_code == 0
    folder = backup_dir_for(src)
    (folder / "manifest.json").unlink()  # as if killed before the manifest: then the input was never written...
    assert cli("fix", src, "--undo").exit_code == 1  # ...but here it was: the intent's checksums catch it
    assert folder.is_dir()
    np.testing.assert_array_equal(read_all(src)[[0, 1, 3]], data[[0, 1, 3]])
    with open_zarr(src) as arr:
        arr[2] = data[2]  # the input as the intent saw it
    undone = cli("fix", src, "--undo")
    assert undone.exit_code == 0, undone.output
    assert not folder.exists()
    np.testing.assert_array_equal(read_all(src), data)


def test_interrupted_backup_leaves_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emrepair.pipelines.fix import FixOptions
    from emrepair.pipelines.inplace import run_fix_in_place

    data = textured_stack(8, 32)
    src = write_zarr(tmp_path / "in.zarr", data)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_fix_in_place(src, FixOptions(model="linear", sections=[2], device="cpu"))
    assert not backup_dir_for(src).exists()
    np.testing.assert_array_equal(read_all(src), data)
