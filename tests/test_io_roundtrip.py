"""Every output format round-trips bit-exactly with its voxel size; path syntax, levels, overwrite and atomicity."""

from __future__ import annotations

import dataclasses
import json
import os
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from emrepair.errors import OutputError
from emrepair.io import ArrayVolume, Volume, create_output, open_volume

SHAPE = (4, 16, 24)
VOXEL = (50.0, 4.6, 4.6)
DTYPES = ["uint8", "uint16", "float32"]
OUTPUTS = {"hdf5": "out.h5", "zarr": "out.zarr", "ome-zarr": "out.ome.zarr", "tiff": "out.tif", "image-folder": "out"}


def make_volume(dtype: str, shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> np.ndarray:
    """A random volume using most of the dtype's range (fractional values for float32)."""
    rng = np.random.default_rng(seed)
    if dtype == "float32":
        return (rng.random(shape) * 1000 - 500).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


def write_all(path: Path, data: np.ndarray, voxel: tuple[float, float, float] | None, **kwargs: object) -> None:
    """Write ``data`` section by section through create_output."""
    with create_output(path, like=ArrayVolume(data, voxel_size=voxel).info, **kwargs) as w:
        for z in range(data.shape[0]):
            w.write_section(z, data[z])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", list(OUTPUTS))
def test_roundtrip_bit_exact_with_voxel_size(tmp_path: Path, fmt: str, dtype: str) -> None:
    data = make_volume(dtype)
    out = tmp_path / OUTPUTS[fmt]
    write_all(out, data, VOXEL)
    with open_volume(out) as vol:
        assert isinstance(vol, Volume)
        assert vol.info.format == fmt
        assert vol.shape == SHAPE and len(vol) == SHAPE[0]
        assert vol.dtype == np.dtype(dtype)
        assert vol.info.voxel_size == pytest.approx(VOXEL, rel=1e-6)
        section = vol.read_section(2)
        assert section.dtype == np.dtype(dtype) and np.array_equal(section, data[2])
        assert np.array_equal(np.stack(list(vol)), data)
        assert np.array_equal(vol.read_section(-1), data[-1])
        region = vol.read_region(slice(1, 3), slice(2, 11), slice(5, 20, 3))
        assert np.array_equal(region, data[1:3, 2:11, 5:20:3])


@pytest.mark.parametrize("fmt", list(OUTPUTS))
def test_unknown_voxel_size_stays_unknown(tmp_path: Path, fmt: str) -> None:
    data = make_volume("uint8")
    write_all(tmp_path / OUTPUTS[fmt], data, None)
    with open_volume(tmp_path / OUTPUTS[fmt]) as vol:
        assert vol.info.voxel_size is None
        assert np.array_equal(vol.read_region(slice(None), slice(None), slice(None)), data)


@pytest.mark.parametrize("fmt", list(OUTPUTS))
def test_write_region_and_provenance(tmp_path: Path, fmt: str) -> None:
    data = make_volume("uint16", seed=3)
    out = tmp_path / OUTPUTS[fmt]
    with create_output(out, like=ArrayVolume(data, voxel_size=VOXEL).info) as w:
        w.write_region(slice(0, 4), slice(0, 8), slice(0, 24), data[:, :8])
        w.write_region(slice(0, 4), slice(8, 16), slice(0, 10), data[:, 8:, :10])
        w.write_region(slice(0, 4), slice(8, 16), slice(10, 24), data[:, 8:, 10:])
        w.set_attrs({"emrepair": {"command": "fix", "sections": [1, 2]}})
    with open_volume(out) as vol:
        assert np.array_equal(vol.read_region(slice(None), slice(None), slice(None)), data)
        assert vol.info.attrs["emrepair"] == {"command": "fix", "sections": [1, 2]}


def test_write_checks_shape_and_lossy_dtype(tmp_path: Path) -> None:
    info = ArrayVolume(make_volume("uint8")).info
    w = create_output(tmp_path / "o.h5", like=info)
    with pytest.raises(ValueError):
        w.write_section(0, np.zeros((16, 23), np.uint8))
    with pytest.raises(TypeError):
        w.write_section(0, np.zeros((16, 24), np.float32))
    with pytest.raises(IndexError):
        w.write_section(4, np.zeros((16, 24), np.uint8))
    w.abort()


def test_output_shape_dtype_and_voxel_override(tmp_path: Path) -> None:
    info = ArrayVolume(make_volume("uint8"), voxel_size=VOXEL).info
    with create_output(tmp_path / "o.zarr", like=info, shape=(7, 16, 24), dtype="float32", voxel_size=(25.0, 4.6, 4.6)) as w:
        w.write_section(6, np.full((16, 24), 0.5, np.float32))
    with open_volume(tmp_path / "o.zarr") as vol:
        assert vol.shape == (7, 16, 24) and vol.dtype == np.float32
        assert vol.info.voxel_size == (25.0, 4.6, 4.6)
        assert vol.read_section(6)[0, 0] == 0.5 and vol.read_section(0).max() == 0


def test_layout_carried_over_from_input(tmp_path: Path) -> None:
    src = tmp_path / "in.h5"
    with h5py.File(src, "w") as f:
        ds = f.create_dataset("volumes/raw", data=make_volume("uint8", (6, 16, 24)), chunks=(2, 8, 8), compression="gzip")
        ds.attrs["resolution"] = [40.0, 4.0, 4.0]
        ds.attrs["source"] = "somewhere"
    with open_volume(src) as vol:
        for name in ("o.h5", "o.zarr"):
            with create_output(tmp_path / name, like=vol.info) as w:
                for z in range(len(vol)):
                    w.write_section(z, vol.read_section(z))
    with open_volume(tmp_path / "o.h5") as out:
        assert out.info.dataset == "volumes/raw"
        assert out.info.chunks == (2, 8, 8) and out.info.compression == "gzip"
        assert out.info.voxel_size == (40.0, 4.0, 4.0) and out.info.attrs["source"] == "somewhere"
    with open_volume(tmp_path / "o.zarr") as out:
        assert out.info.chunks == (2, 8, 8) and out.info.compression == "gzip"
        assert out.info.attrs["source"] == "somewhere"


def test_hdf5_dataset_path_forms(tmp_path: Path) -> None:
    data = make_volume("uint8")
    path = tmp_path / "stack.h5"
    with h5py.File(path, "w") as f:
        f["volumes/raw"] = data
        f["volumes/raw"].attrs["resolution"] = [40.0, 4.0, 4.0]
        f["volumes/mask2d"] = np.zeros((16, 24), np.uint8)  # a 2-D dataset does not count as a candidate
    for kwargs, p in [({}, path), ({}, tmp_path / "stack.h5/volumes/raw"), ({"dataset": "volumes/raw"}, path),
                      ({"dataset": "/volumes/raw"}, path), ({}, tmp_path / "stack.h5/volumes")]:
        with open_volume(p, **kwargs) as vol:
            assert vol.info.dataset == "volumes/raw", (p, kwargs)
            assert vol.info.voxel_size == (40.0, 4.0, 4.0)
            assert np.array_equal(vol.read_section(1), data[1])


def test_hdf5_nan_resolution_means_unknown(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["raw"] = make_volume("uint8")
        f["raw"].attrs["resolution"] = [np.nan, 4.0, 4.0]
    with open_volume(tmp_path / "a.h5") as vol:
        assert vol.info.voxel_size is None


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_groups_and_arrays(tmp_path: Path, zarr_format: int) -> None:
    data = make_volume("uint16")
    group = zarr.open_group(str(tmp_path / "vol.zarr"), mode="w", zarr_format=zarr_format)
    arr = group.create_array("raw", shape=data.shape, chunks=(1, 16, 24), dtype=data.dtype)
    arr[:] = data
    arr.attrs["resolution"] = [30.0, 5.0, 5.0]
    group.create_array("thumb", shape=(16, 24), dtype="uint8")
    bare = zarr.create_array(str(tmp_path / "bare.zarr"), shape=data.shape, dtype=data.dtype, zarr_format=zarr_format)
    bare[:] = data
    for p, kwargs in [(tmp_path / "vol.zarr", {}), (tmp_path / "vol.zarr/raw", {}), (tmp_path / "vol.zarr", {"dataset": "raw"})]:
        with open_volume(p, **kwargs) as vol:
            assert vol.info.format == "zarr" and vol.info.dataset == "raw"
            assert vol.info.voxel_size == (30.0, 5.0, 5.0)
            assert np.array_equal(vol.read_section(3), data[3])
    with open_volume(tmp_path / "bare.zarr") as vol:
        assert vol.info.dataset is None and vol.info.voxel_size is None
        assert np.array_equal(vol.read_region(slice(None), slice(None), slice(None)), data)


def write_ome04(path: Path, data: np.ndarray) -> None:
    """A hand-written OME-Zarr 0.4 (zarr v2) image with two levels, units in micrometres."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("s0", shape=data.shape, dtype=data.dtype)[:] = data
    group.create_array("s1", shape=(data.shape[0], 8, 12), dtype=data.dtype)[:] = data[:, ::2, ::2]
    axes = [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]
    datasets = [
        {"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [0.05, 0.004, 0.004]}]},
        {"path": "s1", "coordinateTransformations": [{"type": "scale", "scale": [0.05, 0.008, 0.008]}]},
    ]
    attrs = {"multiscales": [{"version": "0.4", "name": "img", "axes": axes, "datasets": datasets}]}
    (path / ".zattrs").write_text(json.dumps(attrs))


def test_ome_zarr_04_levels_and_micrometres(tmp_path: Path) -> None:
    data = make_volume("uint8")
    write_ome04(tmp_path / "img.ome.zarr", data)
    with open_volume(tmp_path / "img.ome.zarr") as vol:
        assert vol.info.format == "ome-zarr" and vol.info.dataset == "s0"
        assert vol.info.voxel_size == (50.0, 4.0, 4.0)
        assert np.array_equal(vol.read_section(0), data[0])
    with open_volume(tmp_path / "img.ome.zarr", level=1) as vol:
        assert vol.shape == (4, 8, 12) and vol.info.voxel_size == (50.0, 8.0, 8.0)
        assert np.array_equal(vol.read_section(1), data[1, ::2, ::2])
    with open_volume(tmp_path / "img.ome.zarr/s1") as vol:
        assert vol.info.voxel_size == (50.0, 8.0, 8.0)


def test_ome_zarr_05_output_metadata(tmp_path: Path) -> None:
    write_all(tmp_path / "img.ome.zarr", make_volume("uint8"), VOXEL)
    meta = json.loads((tmp_path / "img.ome.zarr" / "zarr.json").read_text())
    ome = meta["attributes"]["ome"]
    assert meta["zarr_format"] == 3 and ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"] and ms["axes"][0]["unit"] == "nanometer"
    assert ms["datasets"] == [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(VOXEL)}]}]
    arr_meta = json.loads((tmp_path / "img.ome.zarr" / "0" / "zarr.json").read_text())
    assert arr_meta["dimension_names"] == ["z", "y", "x"]


def test_labels_output(tmp_path: Path) -> None:
    info = ArrayVolume(make_volume("float32"), voxel_size=VOXEL).info
    labels = np.zeros(SHAPE, np.uint8)
    labels[2] = 3
    for name in ("mask.ome.zarr", "mask.h5"):
        with create_output(tmp_path / name, like=info, labels=True) as w:
            for z in range(SHAPE[0]):
                w.write_section(z, labels[z])
        with open_volume(tmp_path / name) as vol:
            assert vol.dtype == np.uint8 and np.array_equal(vol.read_region(slice(None), slice(None), slice(None)), labels)
    ome = json.loads((tmp_path / "mask.ome.zarr" / "zarr.json").read_text())["attributes"]["ome"]
    block = ome["image-label"]  # colours and names of the values (detect's by default)
    values = [p["label-value"] for p in block["properties"]]
    assert [c["label-value"] for c in block["colors"]] == values and values[:4] == [0, 1, 2, 3]
    assert block["properties"][3]["class"] == "partial" and block["colors"][0]["rgba"] == [0, 0, 0, 0]
    with h5py.File(tmp_path / "mask.h5", "r") as f:
        assert list(f) == ["labels"]


def test_image_folder_natural_order_png_and_tiff(tmp_path: Path) -> None:
    folder = tmp_path / "sections"
    folder.mkdir()
    for i in (1, 2, 10, 3):
        Image.fromarray(np.full((5, 7), i, np.uint8)).save(folder / f"sec_{i}.png")
    (folder / "notes.txt").write_text("ignored")
    with open_volume(folder) as vol:
        assert vol.info.format == "image-folder" and vol.shape == (4, 5, 7)
        assert [int(s[0, 0]) for s in vol] == [1, 2, 3, 10]
    tfolder = tmp_path / "tiffs"
    tfolder.mkdir()
    data = make_volume("uint16", (11, 5, 7))
    for i in range(11):
        tifffile.imwrite(tfolder / f"{i}.tif", data[i])
    with open_volume(tfolder) as vol:
        assert np.array_equal(np.stack(list(vol)), data) and vol.info.voxel_size is None


def test_tiff_imagej_micrometre_spacing_and_compressed_pages(tmp_path: Path) -> None:
    data = make_volume("uint8")
    path = tmp_path / "um.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 0.004, 1 / 0.005),
                     metadata={"spacing": 0.05, "unit": "micron", "axes": "ZYX"}, compression="zlib")
    with open_volume(path) as vol:
        assert vol.info.voxel_size == pytest.approx((50.0, 5.0, 4.0))
        assert vol.info.compression is not None
        assert np.array_equal(vol.read_section(3), data[3])
    plain = tmp_path / "plain.tiff"
    tifffile.imwrite(plain, data, photometric="minisblack", compression="zlib")  # a plain page stack, read page-wise
    with open_volume(plain) as vol:
        assert vol.info.voxel_size is None and vol.shape == SHAPE
        assert np.array_equal(vol.read_section(2), data[2])


def test_existing_output_refused_unless_overwrite(tmp_path: Path) -> None:
    info = ArrayVolume(make_volume("uint8")).info
    for name in OUTPUTS.values():
        out = tmp_path / name
        write_all(out, make_volume("uint8", seed=1), None, attrs={"emrepair": {"command": "fix"}})
        with pytest.raises(OutputError, match="exists"):
            create_output(out, like=info)
        write_all(out, make_volume("uint8", seed=2), None, overwrite=True)
        with open_volume(out) as vol:
            assert np.array_equal(vol.read_section(0), make_volume("uint8", seed=2)[0])
        with pytest.raises(OutputError, match="not an emrepair output"):  # overwrite replaces only emrepair's own
            create_output(out, like=info, overwrite=True)
    leftovers = [p.name for p in tmp_path.iterdir() if "emrepair-" in p.name]
    assert leftovers == []


@pytest.mark.parametrize("fmt", list(OUTPUTS))
def test_atomic_commit_and_abort(tmp_path: Path, fmt: str) -> None:
    data = make_volume("uint8")
    out = tmp_path / OUTPUTS[fmt]
    w = create_output(out, like=ArrayVolume(data).info)
    w.write_section(0, data[0])
    assert not out.exists() and w.temp_path.exists()
    assert w.temp_path.parent == tmp_path and w.temp_path.name.startswith(".")
    w.abort()
    assert sorted(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with create_output(out, like=ArrayVolume(data).info) as w2:
            w2.write_section(0, data[0])
            raise RuntimeError("boom")
    assert sorted(tmp_path.iterdir()) == []
    w3 = create_output(out, like=ArrayVolume(data).info)
    w3.write_section(1, data[1])
    w3.commit()
    assert out.exists() and not w3.temp_path.exists()
    with pytest.raises(RuntimeError):
        w3.write_section(0, data[0])


def test_input_never_modified(tmp_path: Path) -> None:
    src = tmp_path / "in.h5"
    with h5py.File(src, "w") as f:
        f["raw"] = make_volume("uint8")
    before = (src.read_bytes(), os.stat(src).st_mtime_ns)
    with open_volume(src) as vol:
        vol.read_section(0)
        with create_output(tmp_path / "out.h5", like=vol.info) as w:
            for z, section in enumerate(vol):
                w.write_section(z, section)
        for same in (src, tmp_path / "." / "in.h5"):
            with pytest.raises(OutputError, match="input"):
                create_output(same, like=vol.info, overwrite=True)
    assert (src.read_bytes(), os.stat(src).st_mtime_ns) == before


def test_output_into_folder_holding_the_input_refused(tmp_path: Path) -> None:
    write_all(tmp_path / "vol.zarr", make_volume("uint8"), None)
    with open_volume(tmp_path / "vol.zarr") as vol:
        with pytest.raises(OutputError):
            create_output(tmp_path / "vol.zarr", like=vol.info, overwrite=True)


def test_missing_output_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        create_output(tmp_path / "nope" / "out.h5", like=ArrayVolume(make_volume("uint8")).info)


def test_unwritable_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Permission bits do not stop root (as in CI containers), so the access check itself is simulated.
    monkeypatch.setattr("emrepair.io.create.os.access", lambda path, mode: False)
    with pytest.raises(OutputError, match="not writable"):
        create_output(tmp_path / "out.h5", like=ArrayVolume(make_volume("uint8")).info)


@pytest.mark.parametrize("fmt", list(OUTPUTS))
def test_reading_a_section_does_not_load_the_volume(tmp_path: Path, fmt: str) -> None:
    data = make_volume("float32", (32, 128, 128))  # 2 MB; one section is 64 kB
    write_all(tmp_path / OUTPUTS[fmt], data, None)
    with open_volume(tmp_path / OUTPUTS[fmt]) as vol:
        vol.read_section(0)  # let lazy imports and caches settle
        tracemalloc.start()
        section = vol.read_section(5)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert np.array_equal(section, data[5])
    assert peak < data.nbytes / 4, f"reading one section allocated {peak} bytes"


def test_ome_zarr_with_singleton_time_and_channel_axes(tmp_path: Path) -> None:
    data = make_volume("uint16")
    group = zarr.open_group(str(tmp_path / "tczyx.ome.zarr"), mode="w", zarr_format=3)
    group.create_array("0", shape=(1, 1) + SHAPE, dtype=data.dtype)[:] = data[None, None]
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}] + [
        {"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"
    ]
    scale = [1.0, 1.0, 40.0, 8.0, 8.0]
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}]}]}
    with open_volume(tmp_path / "tczyx.ome.zarr") as vol:
        assert vol.shape == SHAPE and vol.info.voxel_size == (40.0, 8.0, 8.0) and vol.info.chunks is not None
        assert len(vol.info.chunks) == 3
        assert np.array_equal(vol.read_section(2), data[2])
        assert np.array_equal(vol.read_region(slice(1, 3), slice(0, 4), slice(None)), data[1:3, :4])


@pytest.mark.parametrize("name", ["o.zarr", "o.ome.zarr", "o.h5"])
def test_deep_chunks_mixed_write_order(tmp_path: Path, name: str) -> None:
    """Sections buffered per chunk slab and direct region writes interleave without losing either."""
    data = make_volume("uint16", (7, 16, 24), seed=5)
    like = dataclasses.replace(ArrayVolume(data).info, chunks=(3, 8, 8), compression="zstd")
    with create_output(tmp_path / name, like=like) as w:
        for z in (4, 0, 6, 2):
            w.write_section(z, data[z])
        w.write_region(slice(1, 2), slice(0, 16), slice(0, 12), data[1:2, :, :12])
        w.write_section(3, data[3] // 2)
        w.write_region(slice(3, 4), slice(0, 16), slice(0, 24), data[3:4])
        w.write_region(slice(1, 2), slice(0, 16), slice(12, 24), data[1:2, :, 12:])
        w.write_section(5, data[5])
    with open_volume(tmp_path / name) as vol:
        assert vol.info.chunks == (3, 8, 8)
        assert np.array_equal(np.stack([vol.read_section(z) for z in (6, 0, 1, 2, 3, 4, 5)]), data[[6, 0, 1, 2, 3, 4, 5]])
        assert np.array_equal(vol.read_region(slice(None), slice(None), slice(None)), data)
