"""upsample-z with a kind-"volume" model (gan3d): shapes, originals untouched, tiles agree, blocks agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import read_all, textured_stack, write_zarr
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.engine.window import VolumeTiler, window_of
from emrepair.io.base import ArrayVolume
from emrepair.models import save_checkpoint
from emrepair.models.gan3d import GAN3DConfig, GAN3DModel
from emrepair.pipelines.upsample import UpsampleOptions, upsample_volume


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised small gan3d whose output conv is far from zero (so it is not just linear)."""
    torch.manual_seed(0)
    config = GAN3DConfig(filters=4, pre_modules=1, post_modules=1, max_factor=3, halo=8)
    model = GAN3DModel(config)
    with torch.no_grad():
        model.out.weight.normal_(std=0.05)
    return str(save_checkpoint(tmp_path_factory.mktemp("ckpt") / "gan3d.pt", model, config))


def test_gan3d_without_weights_is_a_one_line_error(tmp_path: Path, weights_dir: Path) -> None:
    src = write_zarr(tmp_path / "in.zarr", textured_stack(4, 32))
    result = CliRunner().invoke(app, ["upsample-z", src, "-o", str(tmp_path / "o.zarr"), "--factor", "2",
                                      "--model", "gan3d", "--no-repair", "--no-progress"])
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and "no trained weights" in lines[0], result.output


def test_window_is_clipped_at_the_stack_ends() -> None:
    assert list(window_of(0, 6)) == [0, 1, 2] and list(window_of(2, 6)) == [1, 2, 3, 4]
    assert list(window_of(4, 6)) == [3, 4, 5]
    with pytest.raises(ValueError):
        window_of(5, 6)


def test_checkpoint_gives_shape_and_untouched_originals(tmp_path: Path, checkpoint: str) -> None:
    data = textured_stack(5, 40)
    out = tmp_path / "up.zarr"
    result = upsample_volume(ArrayVolume(data, (30.0, 4.0, 4.0)), str(out),
                             UpsampleOptions(factor=3, model=checkpoint, repair=False, device="cpu"))
    up = read_all(out)
    assert result.model == "gan3d.pt (gan3d)" and up.shape == (13, 40, 40) and up.dtype == np.uint8  # named by its file
    np.testing.assert_array_equal(up[::3], data)
    linear = (2 * data[:-1].astype(np.float64) + data[1:]) / 3
    assert np.abs(up[1::3] - linear).max() > 2  # the network adds something to linear interpolation
    with pytest.raises(Exception, match="factors"):
        upsample_volume(ArrayVolume(data), str(tmp_path / "x.zarr"),
                        UpsampleOptions(factor=4, model=checkpoint, repair=False, device="cpu"))


def test_tiled_matches_untiled(checkpoint: str) -> None:
    from emrepair.models import load_model

    model, _ = load_model(checkpoint)
    window = np.random.default_rng(1).random((4, 56, 48), dtype=np.float32)
    whole = VolumeTiler(model, "cpu").upsample(window, 3, range(4, 6))
    tiled_tiler = VolumeTiler(model, "cpu", tile_size=32, batch_size=3)
    assert len(tiled_tiler.plan((56, 48))) > 4
    tiled = tiled_tiler.upsample(window, 3, range(4, 6))
    assert whole.shape == tiled.shape == (2, 56, 48)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_shares_equal_one_run_with_a_volume_model(tmp_path: Path, checkpoint: str) -> None:
    """Each pair's window depends only on the pair, so blocks in any order and share give the same pixels."""
    src = write_zarr(tmp_path / "in.zarr", textured_stack(7, 32), chunks=(1, 32, 32))
    args = ["--factor", "2", "--model", checkpoint, "--sections", "3", "--no-progress"]
    one = CliRunner().invoke(app, ["upsample-z", src, "-o", str(tmp_path / "one.zarr"), *args])
    assert one.exit_code == 0, one.output
    for i in (2, 1):
        share = CliRunner().invoke(app, ["upsample-z", src, "-o", str(tmp_path / "two.zarr"), *args,
                                         "--part", f"{i}/2"])
        assert share.exit_code == 0, share.output
    np.testing.assert_array_equal(read_all(tmp_path / "two.zarr"), read_all(tmp_path / "one.zarr"))
