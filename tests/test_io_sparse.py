"""Declared shapes checked against what is stored: the chunk index of Zarr stores and chunked HDF5 datasets warns
about mostly unwritten volumes, refuses all-but-empty declared shapes, and serves never-written sections without
reading them."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from helpers import ome_image, refused_to_open

from emrepair.errors import InputWarning
from emrepair.io import open_volume


def test_sparse_zarr_warns_and_reads_unwritten_sections_without_the_store(tmp_path: Path) -> None:
    path = tmp_path / "sparse.zarr"
    arr = zarr.open_array(str(path), mode="w", shape=(2_000, 8, 8), chunks=(1, 8, 8), dtype="uint16", fill_value=7)
    arr[3:40] = 5
    with pytest.warns(InputWarning, match="only 37 of the 2000 chunks"):
        vol = open_volume(path)
    with vol:
        unwritten = vol.unwritten_sections()
        assert len(unwritten) == 1_963 and 3 not in unwritten and 39 not in unwritten and 40 in unwritten
        assert (vol.read_section(40) == 7).all()
        vol._array = None  # after one fill section, unwritten sections never touch the store
        assert (vol.read_section(1_500) == 7).all() and vol.read_section(0).dtype == np.uint16
        assert (vol.read_region(slice(100, 103), slice(1, 4), slice(None)) == 7).all()
    with open_volume(path) as vol:
        region = vol.read_region(slice(2, 5), slice(1, 4), slice(None))
        assert np.array_equal(region, arr[2:5, 1:4, :]) and (vol.read_section(3) == 5).all()


def test_declared_shape_far_beyond_the_stored_chunks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.zarr"
    arr = zarr.open_array(str(path), mode="w", shape=(200_000, 8, 8), chunks=(1, 8, 8), dtype="uint8")
    arr[3] = 5
    refused_to_open(path, "declares 200000 sections but only 1 hold any data .*sections 3-3")


def test_dense_zarr_has_no_warning(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    path = tmp_path / "dense.zarr"
    zarr.open_array(str(path), mode="w", shape=(4, 8, 8), chunks=(2, 4, 4), dtype="uint8")[:] = 1
    with open_volume(path) as vol:
        assert vol.unwritten_sections() == []
    assert not [w for w in recwarn if issubclass(w.category, InputWarning)]


def test_sparse_hdf5_warns_and_an_empty_declared_shape_is_refused(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "sparse.h5", "w") as f:
        f.create_dataset("raw", shape=(100, 8, 8), chunks=(1, 8, 8), dtype="uint8")[5:20] = 3
        f.create_dataset("empty", shape=(200_000, 8, 8), chunks=(1, 8, 8), dtype="uint8")[7] = 3
        f["dense"] = np.ones((4, 8, 8), np.uint8)
    with pytest.warns(InputWarning, match="only 15 of the 100 chunks"):
        open_volume(tmp_path / "sparse.h5", dataset="raw").close()
    refused_to_open(tmp_path / "sparse.h5", "declares 200000 sections but only 1 hold any data", dataset="empty")
    with open_volume(tmp_path / "sparse.h5", dataset="dense") as vol:
        assert vol.chunk_index is None and vol.read_section(3).sum() == 64


def test_masks_and_label_images_are_sparse_by_nature(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    from emrepair.io import create_output

    like = open_volume(ome_image(tmp_path, [{"datasets": [{"path": "0"}]}])).info
    with create_output(tmp_path / "mask.zarr", like=like, shape=(3000, 8, 8), labels=True) as w:
        w.write_section(5, np.ones((8, 8), np.uint8))
        w.set_attrs({"emrepair": {"command": "detect"}})
    with open_volume(tmp_path / "mask.zarr") as vol:  # 2999 empty sections, yet neither refused nor warned about
        assert vol.shape[0] == 3000 and int(vol.read_section(5).sum()) == 64
    g = zarr.open_group(str(tmp_path / "lab.zarr"), mode="w", zarr_format=2)
    g.create_array("0", shape=(3000, 8, 8), chunks=(1, 8, 8), dtype="uint8")[7] = 2
    g.attrs["multiscales"] = [{"datasets": [{"path": "0"}]}]
    g.attrs["image-label"] = {}
    with open_volume(tmp_path / "lab.zarr") as vol:
        assert vol.unwritten_sections()[:3] == [0, 1, 2]
    assert not [w for w in recwarn if issubclass(w.category, InputWarning)]


@pytest.mark.parametrize("fmt", ["zarr", "h5"])
def test_huge_declared_sections_with_nothing_stored_are_refused(tmp_path: Path, fmt: str) -> None:
    shape, chunks = (4, 200_000, 200_000), (1, 1000, 1000)  # 160 GB declared, one 1 MB chunk stored
    if fmt == "zarr":
        path = tmp_path / "big.zarr"
        zarr.open_array(str(path), mode="w", shape=shape, chunks=chunks, dtype="uint8")[0, :1000, :1000] = 9
    else:
        path = tmp_path / "big.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("raw", shape=shape, chunks=chunks, dtype="uint8")[0, :1000, :1000] = 9
    refused_to_open(path, r"declares a 4 x 200000 x 200000 volume \(149.0 GiB\) but only 1 of its 160000 chunks")


def test_detect_reads_one_never_written_section_for_all(tmp_path: Path) -> None:
    from emrepair.detection import DetectConfig, detect_volume

    path = tmp_path / "gappy.zarr"
    arr = zarr.open_array(str(path), mode="w", shape=(60, 32, 32), chunks=(1, 32, 32), dtype="uint8")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    for z in range(0, 60, 3):  # two of every three sections never written
        arr[z] = (100 + 50 * np.sin(xx / 4 + 0.1 * z) + 30 * np.cos(yy / 5) + rng.normal(0, 3, (32, 32))).astype(np.uint8)
    with pytest.warns(InputWarning):
        vol = open_volume(path)
    reads = []
    original = vol._read_section
    vol._read_section = lambda z: reads.append(z) or original(z)
    with vol:
        report = detect_volume(vol, DetectConfig())
    assert len(reads) == 21  # the 20 written sections and one never-written one
    missing = {d.z for d in report.defects if d.kind == "missing"}
    assert {z for z in range(60) if z % 3} <= missing
    assert [s["z"] for s in report.sections] == list(range(60))
