"""Bad inputs raise InputError with a one-line message naming the problem, never a library traceback."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from emrepair.errors import InputError, InputWarning
from emrepair.io import open_volume


def expect_input_error(path: Path, match: str, **kwargs: object) -> InputError:
    """Open ``path`` and return the InputError, checking its message matches and is one line."""
    with pytest.raises(InputError, match=match) as info:
        open_volume(path, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    expect_input_error(tmp_path / "nothing.h5", "not found")
    expect_input_error(tmp_path / "nothing.h5/volumes/raw", "not found")


def test_unknown_extension(tmp_path: Path) -> None:
    (tmp_path / "volume.xyz").write_bytes(b"hello")
    expect_input_error(tmp_path / "volume.xyz", "unknown input format")


def test_hdf5_several_datasets_listed(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"] = np.zeros((2, 3, 4), np.uint8)
        f["b/c"] = np.zeros((2, 3, 4), np.uint8)
    err = expect_input_error(tmp_path / "two.h5", "several 3-D datasets")
    assert "a" in str(err) and "b/c" in str(err)
    with open_volume(tmp_path / "two.h5", dataset="b/c") as vol:
        assert vol.shape == (2, 3, 4)
    expect_input_error(tmp_path / "two.h5", "no dataset 'zz'", dataset="zz")
    expect_input_error(tmp_path / "two.h5/a", "also given", dataset="b/c")


def test_zarr_several_arrays_listed(tmp_path: Path) -> None:
    g = zarr.open_group(str(tmp_path / "two.zarr"), mode="w")
    g.create_array("one", shape=(2, 3, 4), dtype="uint8")
    g.create_array("two", shape=(2, 3, 4), dtype="uint8")
    err = expect_input_error(tmp_path / "two.zarr", "several 3-D arrays")
    assert "one" in str(err) and "two" in str(err)
    expect_input_error(tmp_path / "two.zarr/three", "no array 'three'")


@pytest.mark.parametrize("shape", [(16, 24), (2, 3, 16, 24)])
def test_wrong_dimensionality_says_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    data = np.zeros(shape, np.uint8)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["raw"] = data
    expect_input_error(tmp_path / "x.h5", "expected a 3-D")
    expect_input_error(tmp_path / "x.h5", rf"shape \({shape[0]}, {shape[1]}", dataset="raw")
    zarr.create_array(str(tmp_path / "x.zarr"), shape=shape, dtype="uint8")
    expect_input_error(tmp_path / "x.zarr", "shape")
    tifffile.imwrite(tmp_path / "x.tif", data, photometric="minisblack")
    expect_input_error(tmp_path / "x.tif", "shape")


def test_empty_array(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "e.h5", "w") as f:
        f["raw"] = np.zeros((0, 16, 24), np.uint8)
    expect_input_error(tmp_path / "e.h5", "empty")
    zarr.create_array(str(tmp_path / "e.zarr"), shape=(3, 0, 4), dtype="uint8")
    expect_input_error(tmp_path / "e.zarr", "empty")
    (tmp_path / "folder").mkdir()
    expect_input_error(tmp_path / "folder", "no .tif")


@pytest.mark.parametrize("dtype", ["int32", "float64", "bool"])
def test_unsupported_dtype(tmp_path: Path, dtype: str) -> None:
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["raw"] = np.zeros((2, 3, 4), dtype)
    expect_input_error(tmp_path / "d.h5", f"unsupported dtype {np.dtype(dtype)}")
    zarr.create_array(str(tmp_path / "d.zarr"), shape=(2, 3, 4), dtype=dtype)
    expect_input_error(tmp_path / "d.zarr", "unsupported dtype")


def test_corrupt_and_truncated_files(tmp_path: Path) -> None:
    (tmp_path / "garbage.h5").write_bytes(b"not an hdf5 file at all" * 10)
    expect_input_error(tmp_path / "garbage.h5", "cannot read")
    with h5py.File(tmp_path / "full.h5", "w") as f:
        f["raw"] = np.arange(4 * 64 * 64, dtype=np.uint16).reshape(4, 64, 64)
    blob = (tmp_path / "full.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(blob[: len(blob) // 3])
    expect_input_error(tmp_path / "cut.h5", "cannot read")
    (tmp_path / "garbage.tif").write_bytes(b"II*\x00garbage")
    expect_input_error(tmp_path / "garbage.tif", "cannot read")
    bad = tmp_path / "bad.zarr"
    bad.mkdir()
    (bad / "zarr.json").write_text("{ not json")
    expect_input_error(bad, "cannot read")


def test_broken_section_in_folder(tmp_path: Path) -> None:
    folder = tmp_path / "secs"
    folder.mkdir()
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(folder / "1.png")
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(folder / "2.png")
    (folder / "3.png").write_bytes(b"\x89PNG broken")
    err = expect_input_error(folder, "3.png .*cannot be read")
    assert "--skip-unreadable" in str(err)
    with pytest.warns(InputWarning, match="3.png"):
        with open_volume(folder, skip_unreadable=True) as vol:
            assert vol.shape == (2, 5, 7)
    Image.fromarray(np.zeros((6, 7), np.uint8)).save(folder / "3.png")
    expect_input_error(folder, "3.png: section 2 has shape .*expected")  # found from the header, at open
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(rgb / "0.png")
    expect_input_error(rgb, "greyscale")


def test_level_rules(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["raw"] = np.zeros((2, 3, 4), np.uint8)
    expect_input_error(tmp_path / "a.h5", "level", level=1)
    zarr.create_array(str(tmp_path / "plain.zarr"), shape=(2, 3, 4), dtype="uint8")
    expect_input_error(tmp_path / "plain.zarr", "level", level=1)
    g = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w")
    g.create_array("0", shape=(2, 3, 4), dtype="uint8")
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [{"name": n} for n in "zyx"], "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}]}]}
    expect_input_error(tmp_path / "img.ome.zarr", "level 3 not found", level=3)
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [{"name": n} for n in "cyx"], "datasets": [{"path": "0"}]}]}
    expect_input_error(tmp_path / "img.ome.zarr", "axes")


def test_ome_zarr_with_several_channels_refused(tmp_path: Path) -> None:
    g = zarr.open_group(str(tmp_path / "rgb.ome.zarr"), mode="w")
    g.create_array("0", shape=(3, 2, 4, 5), dtype="uint8")
    axes = [{"name": "c", "type": "channel"}] + [{"name": n, "type": "space"} for n in "zyx"]
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1, 1]}]}]}]}
    expect_input_error(tmp_path / "rgb.ome.zarr", r"single-channel.*\(3, 2, 4, 5\)")


def test_damaged_chunk_reported_when_read(tmp_path: Path) -> None:
    store = tmp_path / "c.zarr"
    arr = zarr.create_array(str(store), shape=(3, 8, 8), chunks=(1, 8, 8), dtype="uint8")
    arr[:] = np.arange(3 * 64, dtype=np.uint8).reshape(3, 8, 8)
    chunk = next(p for p in store.rglob("*") if p.is_file() and p.relative_to(store).parts[0] == "c")
    chunk.write_bytes(b"garbage" * 3)
    with open_volume(store) as vol:
        with pytest.raises(InputError, match="cannot read section"):
            for z in range(3):
                vol.read_section(z)
