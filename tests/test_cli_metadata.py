"""Input attributes reach the output with their types (arrays stay arrays) for HDF5, Zarr and OME-Zarr, beside
emrepair's provenance: CREMI-style (resolution, offset) and funlib-style (voxel_size, offset, axis_names, units)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from helpers import smooth_stack
from test_cli_text import run, stack_h5


CREMI = {"resolution": np.array([40.0, 4.0, 4.0]), "offset": np.array([1000, 0, 0], dtype=np.int64)}


FUNLIB = {"voxel_size": np.array([40, 4, 4], dtype=np.int32), "offset": np.array([1000.0, 8.0, 8.0]),
          "axis_names": np.array(["z", "y", "x"], dtype=h5py.string_dtype()),
          "units": np.array(["nm", "nm", "nm"], dtype=h5py.string_dtype()), "comment": "from the scope",
          "gain": np.float32(1.5)}


@pytest.mark.parametrize("attrs", [CREMI, FUNLIB], ids=["cremi", "funlib"])
def test_input_attributes_are_copied_with_their_types(tmp_path: Path, attrs: dict[str, object]) -> None:
    path = stack_h5(tmp_path, **attrs)
    carried = {k: v for k, v in attrs.items() if k != "resolution"}  # resolution: re-derived from the voxel size
    for name in ("o.h5", "o.zarr", "o.ome.zarr"):
        result = run("fix", str(path), "-o", str(tmp_path / name), "--model", "linear", "--sections", "3",
                     "--no-progress")
        assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "o.h5", "r") as f:
        ds = f[next(iter(f.keys()))]
        for key, value in carried.items():
            got = ds.attrs[key]
            if isinstance(value, np.ndarray):
                assert isinstance(got, np.ndarray), (key, got)
                assert got.dtype.kind == value.dtype.kind and list(got) == list(value), (key, got)
                if value.dtype.kind in "iuf":
                    assert got.dtype == value.dtype
            else:
                assert got == value and type(got) is type(value) or np.asarray(got).dtype == np.asarray(value).dtype
        assert list(ds.attrs["resolution"]) == [40.0, 4.0, 4.0]
        assert "emrepair" in ds.attrs
    plain = zarr.open_group(str(tmp_path / "o.zarr"), mode="r")
    array_attrs = dict(plain[next(iter(plain.array_keys()))].attrs) if list(plain.array_keys()) else dict(plain.attrs)
    ome = dict(zarr.open_group(str(tmp_path / "o.ome.zarr"), mode="r").attrs)
    for found in (array_attrs, ome):
        for key, value in carried.items():
            expected = np.asarray(value).tolist()
            assert found[key] == expected, (key, found.get(key))
        assert "emrepair" in found


def test_zarr_list_attributes_become_hdf5_arrays(tmp_path: Path) -> None:
    from helpers import write_zarr

    data = smooth_stack(6, 32)
    src = write_zarr(tmp_path / "in.zarr", data)
    node = zarr.open(src, mode="r+")
    node.attrs.update({"voxel_size": [40, 4, 4], "offset": [0, 16, 16], "axis_names": ["z", "y", "x"],
                       "units": ["nm", "nm", "nm"], "extra": {"nested": [1, "a"]}})
    result = run("fix", src, "-o", str(tmp_path / "o.h5"), "--model", "linear", "--sections", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "o.h5", "r") as f:
        ds = f[next(iter(f.keys()))]
        assert ds.attrs["voxel_size"].dtype.kind == "i" and list(ds.attrs["voxel_size"]) == [40, 4, 4]
        assert list(ds.attrs["offset"]) == [0, 16, 16]
        assert [str(v) for v in ds.attrs["axis_names"]] == ["z", "y", "x"]
        assert json.loads(ds.attrs["extra"]) == {"nested": [1, "a"]}  # structured values: JSON text


def test_upsample_rescales_spacing_attributes(tmp_path: Path) -> None:
    path = stack_h5(tmp_path, voxel_size=np.array([40, 4, 4], dtype=np.int32),
                    element_size_um=np.array([0.04, 0.004, 0.004]), offset=np.array([1000, 0, 0], dtype=np.int64))
    result = run("upsample-z", str(path), "-o", str(tmp_path / "u.h5"), "--factor", "2", "--model", "linear",
                 "--no-repair", "--no-progress")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "u.h5", "r") as f:
        ds = f[next(iter(f.keys()))]
        assert ds.attrs["voxel_size"].dtype == np.int32 and list(ds.attrs["voxel_size"]) == [20, 4, 4]
        assert np.allclose(ds.attrs["element_size_um"], [0.02, 0.004, 0.004])
        assert list(ds.attrs["offset"]) == [1000, 0, 0]  # a world position, not a spacing: kept as it was
        assert list(ds.attrs["resolution"]) == [20.0, 4.0, 4.0]


def test_rescale_spacing_keeps_types() -> None:
    from emrepair.io.metadata import rescale_spacing

    attrs = {"voxel_size": [40, 4, 4], "other": [40, 4, 4]}
    assert rescale_spacing(attrs, (40.0, 4.0, 4.0), (40.0, 4.0, 4.0)) is attrs
    assert rescale_spacing(attrs, None, (10.0, 4.0, 4.0)) is attrs
    out = rescale_spacing(attrs, (40.0, 4.0, 4.0), (15.0, 4.0, 4.0))
    assert out == {"voxel_size": [15, 4, 4], "other": [40, 4, 4]}
    assert rescale_spacing(attrs, (40.0, 4.0, 4.0), (13.3, 4.0, 4.0))["voxel_size"] == [13.3, 4.0, 4.0]
