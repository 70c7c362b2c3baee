"""``--part i/N`` shares fill one output; the last share to finish commits it; single files refuse shares."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.runstate import parse_part, progress_dir_for, share_of
from emrepair.errors import UsageError
from helpers import read_all, textured_stack, write_zarr

ARGS = ["--sections", "1,4-5,9", "--model", "linear", "--no-progress"]


def fix(*args: str) -> object:
    return CliRunner().invoke(app, ["fix", *args, *ARGS])


@pytest.mark.parametrize("suffix", [".zarr", ".ome.zarr", "_folder"])
def test_three_shares_equal_one_run(tmp_path: Path, suffix: str) -> None:
    src = write_zarr(tmp_path / "in.zarr", textured_stack(12, 48), chunks=(1, 48, 48))
    ref, out = tmp_path / f"ref{suffix}", tmp_path / f"out{suffix}"
    assert fix(src, "-o", str(ref)).exit_code == 0
    for i in (2, 3):
        result = fix(src, "-o", str(out), "--part", f"{i}/3")
        assert result.exit_code == 0, result.output
        assert "left to other shares" in result.stderr and not out.exists()
    result = fix(src, "-o", str(out), "--part", "1/3")
    assert result.exit_code == 0 and out.exists() and not progress_dir_for(out).exists()
    np.testing.assert_array_equal(read_all(out), read_all(ref))


def test_shares_refuse_single_file_outputs_and_overwrite(tmp_path: Path) -> None:
    src = write_zarr(tmp_path / "in.zarr", textured_stack(12, 48))
    for name in ("out.h5", "out.tif"):
        result = fix(src, "-o", str(tmp_path / name), "--part", "1/2")
        assert result.exit_code == 2 and ".zarr" in result.stderr and not (tmp_path / name).exists()
    assert fix(src, "-o", str(tmp_path / "o.zarr"), "--part", "1/2", "--overwrite").exit_code == 2
    assert fix(src, "-o", str(tmp_path / "o.zarr"), "--part", "3/2").exit_code == 2


def test_parse_part_and_share_of() -> None:
    assert parse_part("2/5") == (2, 5)
    for bad in ("0/3", "4/3", "x", "1/0", "1/2/3"):
        with pytest.raises(UsageError):
            parse_part(bad)
    items = list(range(7))
    shares = [share_of(items, i, 3) for i in (1, 2, 3)]
    assert sorted(sum(shares, [])) == items and shares[0] == [0, 3, 6]


def test_hdf5_output_resumes_without_shares(tmp_path: Path) -> None:
    src = write_zarr(tmp_path / "in.zarr", textured_stack(12, 48))
    out = tmp_path / "out.h5"
    assert fix(src, "-o", str(out)).exit_code == 0
    with h5py.File(out, "r") as f:
        assert f["raw"].shape == (12, 48, 48)
