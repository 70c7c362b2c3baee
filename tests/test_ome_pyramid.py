"""OME-Zarr outputs carry a 2x in-plane pyramid (means for images, maxima for labels) that ome-zarr-models and
ome-zarr-py accept, and that emrepair reads back level by level."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from emrepair.io import ArrayVolume, create_output, open_volume
from emrepair.io.ome import pyramid_shapes
from emrepair.io.writers import pyramid
from emrepair.io.writers.pyramid import downsample2

VOXEL = (40.0, 4.0, 4.0)


def write(path: Path, data: np.ndarray, voxel: tuple[float, float, float] | None = VOXEL, **kwargs: object) -> None:
    """``data`` through create_output, section by section (chunks of 1 x 32 x 32)."""
    with create_output(path, like=ArrayVolume(data, voxel_size=voxel).info, chunks=(1, 32, 32), **kwargs) as w:
        for z in range(data.shape[0]):
            w.write_section(z, data[z])


@pytest.fixture
def small_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pyramids down to 16 px, so that tiny volumes get levels."""
    monkeypatch.setattr("emrepair.io.ome.PYRAMID_MIN_PX", 16)


def test_pyramid_shapes_stop_near_256_px() -> None:
    assert pyramid_shapes((5, 2048, 1500)) == [(5, 2048, 1500), (5, 1024, 750), (5, 512, 375), (5, 256, 188)]
    assert pyramid_shapes((3, 600, 300)) == [(3, 600, 300), (3, 300, 150)]
    assert pyramid_shapes((3, 509, 200)) == [(3, 509, 200)]  # halving would go below 256 px
    assert pyramid_shapes((3, 65, 33), min_px=16) == [(3, 65, 33), (3, 33, 17), (3, 17, 9)]


def test_downsample_means_keep_dtype_and_labels_take_the_maximum() -> None:
    block = np.array([[[1, 2, 9], [3, 5, 9], [250, 250, 0]]], np.uint8)  # 1 x 3 x 3: odd edges repeat
    assert downsample2(block, labels=False).tolist() == [[[3, 9], [250, 0]]]  # 2.75 -> 3; (250+250+250+250)/4
    assert downsample2(block, labels=False).dtype == np.uint8
    labels = np.zeros((1, 4, 4), np.uint8)
    labels[0, 1, 1] = 2  # one synthetic pixel stays visible at the coarser level
    assert downsample2(labels, labels=True).tolist() == [[[2, 0], [0, 0]]]
    floats = np.arange(8, dtype=np.float32).reshape(1, 2, 4)
    assert downsample2(floats, labels=False).tolist() == [[[2.5, 4.5]]]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_levels_are_block_means_with_scales_and_translations(tmp_path: Path, small_levels: None,
                                                             dtype: str) -> None:
    rng = np.random.default_rng(0)
    data = (rng.random((3, 70, 64)) * 200).astype(dtype)
    write(tmp_path / "img.ome.zarr", data)
    group = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="r")
    ms = group.attrs["ome"]["multiscales"][0]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    assert ms["datasets"][1]["coordinateTransformations"] == [
        {"type": "scale", "scale": [40.0, 8.0, 8.0]}, {"type": "translation", "translation": [0.0, 2.0, 2.0]}]
    assert ms["datasets"][2]["coordinateTransformations"][0]["scale"] == [40.0, 16.0, 16.0]
    assert group["1"].shape == (3, 35, 32) and group["2"].shape == (3, 18, 16) and group["1"].dtype == dtype
    np.testing.assert_array_equal(group["0"][:], data)
    np.testing.assert_array_equal(group["1"][:], downsample2(data, labels=False))
    np.testing.assert_array_equal(group["2"][:], downsample2(group["1"][:], labels=False))
    for level, voxel in ((0, VOXEL), (1, (40.0, 8.0, 8.0)), (2, (40.0, 16.0, 16.0))):
        with open_volume(tmp_path / "img.ome.zarr", level=level) as vol:
            assert vol.info.voxel_size == voxel and vol.shape == group[str(level)].shape


def test_pyramid_is_valid_ngff_for_ome_zarr_models_and_ome_zarr_py(tmp_path: Path, small_levels: None) -> None:
    models = pytest.importorskip("ome_zarr_models.v05")
    data = np.random.default_rng(1).integers(0, 255, (2, 64, 48), dtype=np.uint8)
    write(tmp_path / "img.ome.zarr", data, voxel=None)
    group = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="r")
    image = models.Image.from_zarr(group)
    assert [d.path for d in image.datasets[0]] == ["0", "1", "2"]
    assert [a.unit for a in image.ome_attributes.multiscales[0].axes] == ["nanometer"] * 3
    reader = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    node = next(iter(reader.Reader(parse_url(str(tmp_path / "img.ome.zarr")))()))
    assert [tuple(level.shape) for level in node.data] == [(2, 64, 48), (2, 32, 24), (2, 16, 12)]
    np.testing.assert_array_equal(np.asarray(node.data[1]), downsample2(data, labels=False))
    with open_volume(tmp_path / "img.ome.zarr", level=2) as vol:
        assert vol.info.voxel_size is None  # scale 1 was a placeholder: still unknown at every level


def test_label_output_pyramid_uses_maxima(tmp_path: Path, small_levels: None) -> None:
    labels = np.zeros((2, 64, 64), np.uint8)
    labels[1, 10, 11] = 3
    write(tmp_path / "m.ome.zarr", labels, labels=True)
    group = zarr.open_group(str(tmp_path / "m.ome.zarr"), mode="r")
    assert group["1"][1, 5, 5] == 3 and group["2"][1, 2, 2] == 3 and int(group["2"][:].sum()) == 3


def test_pyramid_is_written_chunk_by_chunk(tmp_path: Path, small_levels: None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """No level is read whole: every read of the level above is at most a 2 x 2 block of output chunks."""
    reads: list[int] = []
    real = pyramid.downsample2

    def counting(block: np.ndarray, labels: bool) -> np.ndarray:
        reads.append(block.size)
        return real(block, labels)

    monkeypatch.setattr(pyramid, "downsample2", counting)
    write(tmp_path / "img.ome.zarr", np.ones((2, 128, 128), np.uint8))
    assert reads and max(reads) <= 1 * 64 * 64  # one z per chunk, 2 x 2 chunks of 32 x 32


def test_single_level_when_the_volume_is_small(tmp_path: Path) -> None:
    write(tmp_path / "img.ome.zarr", np.ones((2, 64, 64), np.uint8))
    meta = json.loads((tmp_path / "img.ome.zarr" / "zarr.json").read_text())["attributes"]["ome"]
    assert [d["path"] for d in meta["multiscales"][0]["datasets"]] == ["0"]
    assert not (tmp_path / "img.ome.zarr" / "1").exists()
