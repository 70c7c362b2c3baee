"""Inputs are validated before pixels are read: special files refused at once, folders exact, OME-NGFF metadata
checked against its schema, decoder errors named; every message is one line (sparse stores: test_io_sparse.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr

from emrepair.errors import InputError, InputWarning
from emrepair.io import open_volume
from helpers import fail_after, ome_image, refused_to_open


@pytest.fixture(autouse=True)
def no_hang():
    """Fail (rather than hang the suite) when something blocks on a FIFO."""
    with fail_after(20):
        yield


def section_folder(path: Path, n: int = 4) -> Path:
    path.mkdir()
    for i in range(n):
        tifffile.imwrite(path / f"s{i}.tif", np.full((8, 8), 10 * i, np.uint8))
    return path


@pytest.mark.parametrize("kind, match", [
    ("dangling", "s1b.tif .*dangling symbolic link"),
    ("loop", "s1b.tif .*symbolic link loop"),
    ("fifo", "s1b.tif .*FIFO"),
    ("device", "s1b.tif .*device"),
    ("folder", "s1b.tif .*is a folder"),
    ("garbage", "s1b.tif .*cannot be read"),
])
def test_folder_entry_that_cannot_be_read_is_named(tmp_path: Path, kind: str, match: str) -> None:
    folder = section_folder(tmp_path / "secs")
    entry = folder / "s1b.tif"
    {"dangling": lambda: entry.symlink_to(tmp_path / "gone.tif"),
     "loop": lambda: entry.symlink_to(entry),
     "fifo": lambda: os.mkfifo(entry),
     "device": lambda: entry.symlink_to("/dev/zero"),
     "folder": lambda: entry.mkdir(),
     "garbage": lambda: entry.write_bytes(b"II*\x00" + b"\x01" * 3)}[kind]()
    text = refused_to_open(folder, match)
    assert "z=2" in text and "--skip-unreadable" in text
    with pytest.warns(InputWarning, match="s1b.tif"):
        vol = open_volume(folder, skip_unreadable=True)
    with vol:
        assert vol.shape == (4, 8, 8)  # the entry is left out, loudly; the four good sections stay in order
        assert [int(vol.read_section(z)[0, 0]) for z in range(4)] == [0, 10, 20, 30]


def test_hidden_and_other_files_are_not_sections(tmp_path: Path) -> None:
    folder = section_folder(tmp_path / "secs", 3)
    (folder / ".s9.tif").write_bytes(b"junk")
    (folder / "notes.txt").write_text("hello")
    with open_volume(folder) as vol:
        assert vol.shape == (3, 8, 8)


def test_fifo_inputs_are_refused_at_once(tmp_path: Path) -> None:
    for name in ("v.tif", "v.h5", "v.raw"):
        os.mkfifo(tmp_path / name)
        refused_to_open(tmp_path / name, "FIFO")
    (tmp_path / "zero.h5").symlink_to("/dev/zero")
    refused_to_open(tmp_path / "zero.h5", "device")


def test_dangling_link_input(tmp_path: Path) -> None:
    (tmp_path / "v.h5").symlink_to(tmp_path / "elsewhere.h5")
    refused_to_open(tmp_path / "v.h5", "dangling")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_fifo_zarr_chunk_is_refused(tmp_path: Path, zarr_format: int) -> None:
    path = tmp_path / "v.zarr"
    zarr.open_array(str(path), mode="w", shape=(4, 8, 8), chunks=(1, 8, 8), dtype="uint8",
                    zarr_format=zarr_format)[:] = 3
    chunk = next(p for p in sorted(path.rglob("*")) if p.is_file() and p.name not in (".zarray", ".zattrs", "zarr.json"))
    chunk.unlink()
    os.mkfifo(chunk)
    refused_to_open(path, "FIFO")


@pytest.mark.parametrize("multiscales, field", [
    ("not a list", "multiscales"),
    (["a string"], r"multiscales\[0\]"),
    ([{"datasets": []}], r"multiscales\[0\].datasets"),
    ([{"datasets": [{"coordinateTransformations": []}]}], r"datasets\[0\].path"),
    ([{"datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": ["x", 1, 1]}]}]}],
     r"scale\[0\]"),
    ([{"axes": [{"unit": "nm"}, "y", "x"], "datasets": [{"path": "0"}]}], r"axes\[0\]"),
    ([], "empty list"),
])
def test_malformed_ome_metadata_names_the_field(tmp_path: Path, multiscales: object, field: str) -> None:
    text = refused_to_open(ome_image(tmp_path, multiscales), "malformed OME-NGFF metadata")
    assert __import__("re").search(field, text), text


def test_valid_ome_metadata_still_reads(tmp_path: Path) -> None:
    ms = [{"version": "0.4", "axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"],
           "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [40, 4, 4]}]}]}]
    with open_volume(ome_image(tmp_path, ms)) as vol:
        assert vol.info.voxel_size == (40.0, 4.0, 4.0) and vol.info.format == "ome-zarr"


def test_corrupt_gzip_zarr_chunk_names_section_and_fault(tmp_path: Path) -> None:
    from zarr.codecs import GzipCodec

    path = tmp_path / "g.zarr"
    arr = zarr.create_array(str(path), shape=(4, 8, 8), chunks=(1, 8, 8), dtype="uint8", compressors=GzipCodec())
    arr[:] = np.arange(4, dtype=np.uint8)[:, None, None]
    chunk = path / "c" / "2" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:10] + b"\xff" * 20)  # a gzip header, then junk: zlib's "Error -3"
    with open_volume(path) as vol:
        assert int(vol.read_section(1)[0, 0]) == 1
        with pytest.raises(InputError, match=r"section 2 of .*g.zarr: corrupt compressed data") as info:
            vol.read_section(2)
    assert "\n" not in str(info.value)


def test_truncated_tiff_page_names_file(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "t.tif", np.ones((4, 32, 32), np.uint8), compression="zlib",
                     photometric="minisblack")
    raw = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "t.tif").write_bytes(raw[: len(raw) // 2])
    try:
        vol = open_volume(tmp_path / "t.tif")
    except InputError as exc:
        assert "t.tif" in str(exc) and "\n" not in str(exc)
        return
    with vol, pytest.raises(InputError, match="t.tif"):
        for z in range(len(vol)):
            vol.read_section(z)


def test_permission_errors_are_input_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["raw"] = np.zeros((2, 4, 4), np.uint8)
    vol = open_volume(tmp_path / "p.h5")

    def denied(*args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(vol, "_read_section", denied)
    with vol, pytest.raises(InputError, match=r"section 1 of .*p.h5: permission denied"):
        vol.read_section(1)
    folder = section_folder(tmp_path / "secs", 2)
    monkeypatch.setattr(os, "scandir", lambda p: denied())
    refused_to_open(folder, "cannot list folder")


def test_zarr_metadata_as_fifo_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.zarr"
    zarr.open_array(str(path), mode="w", shape=(2, 4, 4), dtype="uint8", zarr_format=2)[:] = 1
    (path / ".zattrs").unlink(missing_ok=True)
    os.mkfifo(path / ".zattrs")
    refused_to_open(path, "FIFO")
    meta = json.loads((path / ".zarray").read_text())
    assert meta["shape"] == [2, 4, 4]  # the input is untouched


def test_a_section_bigger_than_memory_is_named_not_out_of_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emrepair.io import section_volume

    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["raw"] = np.ones((3, 64, 64), np.uint16)
    monkeypatch.setattr(section_volume, "physical_memory", lambda: 4096)  # a machine with 4 KiB of memory
    with open_volume(tmp_path / "v.h5") as vol:
        with pytest.raises(InputError, match=r"section 1 of .*v.h5: it needs 8192 bytes, more than this machine's 4096 bytes"):
            vol.read_section(1)
        assert vol.read_region(slice(0, 1), slice(0, 8), slice(0, 8)).sum() == 64  # small regions still read
        with pytest.raises(InputError, match="region of .*more than this machine"):
            vol.read_region(slice(0, 3), slice(None), slice(None))
