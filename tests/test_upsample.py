"""upsample-z on tiny synthetic volumes: shapes, originals, linear ramps, voxel sizes, repair, dtypes, streaming."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import typer
from helpers import smooth_stack, write_h5
from typer.testing import CliRunner

from emrepair.cli.commands_upsample import upsample_z
from emrepair.errors import InputError, OutputError, UsageError
from emrepair.io import open_volume
from emrepair.io.base import ArrayVolume
from emrepair.pipelines.upsample import UpsampleOptions, run_upsample, upsample_volume
from emrepair.pipelines.upsample.plan import (
    INTERPOLATED_LABEL,
    output_depth,
    positions,
    resolve_factor,
)

app = typer.Typer()
app.command("upsample-z")(upsample_z)


@app.command("noop")
def _noop() -> None:
    """A second command so that Typer keeps ``upsample-z`` as a named subcommand."""


runner = CliRunner()


def stack(depth: int = 5, size: int = 48, dtype: str = "uint8", seed: int = 0) -> np.ndarray:
    """A short smooth stack for upsampling tests."""
    return smooth_stack(depth, size, dtype, seed)


def read_all(path: Path | str) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """The whole volume at ``path`` and its voxel size."""
    with open_volume(str(path)) as vol:
        return vol.read_region(slice(None), slice(None), slice(None)), vol.info.voxel_size


def run(*args: str) -> object:
    """Invoke ``upsample-z`` in-process."""
    return runner.invoke(app, ["upsample-z", *args])


def assert_one_line_error(result: object, code: int | None = None) -> None:
    """The command failed with a single ``error:`` line and no traceback."""
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output


class CountingVolume(ArrayVolume):
    """An ArrayVolume that records every section it is asked for."""

    def __init__(self, array: np.ndarray, voxel_size: tuple[float, float, float] | None = None) -> None:
        super().__init__(array, voxel_size)
        self.reads: list[int] = []

    def read_section(self, z: int) -> np.ndarray:
        self.reads.append(z)
        return super().read_section(z)

    def read_region(self, z: slice, y: slice, x: slice) -> np.ndarray:
        raise AssertionError("upsample-z must read section by section")


@pytest.mark.parametrize("factor", [2, 3, 5])
def test_shape_originals_and_linear_ramp(tmp_path: Path, factor: int) -> None:
    data = stack(depth=4)
    src = write_h5(tmp_path / "in.h5", data)
    out = tmp_path / "out.h5"
    result = run(src, "--factor", str(factor), "-o", str(out), "--model", "linear", "--no-repair", "--no-progress")
    assert result.exit_code == 0, result.output
    up, voxel = read_all(out)
    assert up.shape == ((4 - 1) * factor + 1, 48, 48) and up.dtype == np.uint8
    np.testing.assert_array_equal(up[::factor], data)
    assert voxel == pytest.approx((40.0 / factor, 4.0, 4.0))
    for z in range(3):
        a, b = data[z].astype(np.float64), data[z + 1].astype(np.float64)
        for j in range(1, factor):
            expected = a + (b - a) * j / factor
            assert np.abs(up[factor * z + j] - expected).max() <= 0.5 + 1e-3


def test_float_linear_ramp_is_exact_and_dtypes_are_kept(tmp_path: Path) -> None:
    for dtype in ("float32", "uint16"):
        data = stack(depth=3, dtype=dtype)
        result = upsample_volume(ArrayVolume(data, (30.0, 5.0, 5.0)), str(tmp_path / f"{dtype}.h5"),
                                 UpsampleOptions(factor=3, model="linear", repair=False, device="cpu"))
        up, voxel = read_all(tmp_path / f"{dtype}.h5")
        assert up.dtype == np.dtype(dtype) and result.output_shape == (7, 48, 48)
        np.testing.assert_array_equal(up[::3], data)
        assert voxel == pytest.approx((10.0, 5.0, 5.0))
        a, b = data[1].astype(np.float64), data[2].astype(np.float64)
        tolerance = 1e-5 * np.abs(data).max() if dtype == "float32" else 0.5 + 1e-3
        assert np.abs(up[4] - (a + (b - a) / 3)).max() <= tolerance
        assert np.abs(up[5] - (a + 2 * (b - a) / 3)).max() <= tolerance


@pytest.mark.parametrize("suffix", [".ome.zarr", ".tif"])
def test_voxel_size_divided_in_other_formats(tmp_path: Path, suffix: str) -> None:
    data = stack(depth=3, size=32)
    src = write_h5(tmp_path / "in.h5", data, resolution=(50.0, 5.0, 5.0))
    out = tmp_path / f"out{suffix}"
    result = run(src, "--factor", "5", "-o", str(out), "--model", "linear", "--no-repair", "--no-progress")
    assert result.exit_code == 0, result.output
    up, voxel = read_all(out)
    assert up.shape == (11, 32, 32)
    assert voxel == pytest.approx((10.0, 5.0, 5.0))


def test_target_z_derivation_and_errors(tmp_path: Path) -> None:
    assert resolve_factor(None, 10.0, (40.0, 4.0, 4.0)).factor == 4
    assert resolve_factor(None, 12.0, (40.0, 4.0, 4.0)).factor == 3   # 3.33 -> 3
    assert resolve_factor(None, 11.0, (40.0, 4.0, 4.0)).factor == 4   # 3.64 -> 4
    chosen = resolve_factor(None, 12.0, (40.0, 4.0, 4.0))
    assert chosen.output_z_nm == pytest.approx(40 / 3) and "13.3333 nm" in chosen.describe()
    with pytest.raises(InputError, match="voxel size"):
        resolve_factor(None, 10.0, None)
    with pytest.raises(UsageError, match="factor 1"):
        resolve_factor(None, 30.0, (40.0, 4.0, 4.0))
    with pytest.raises(UsageError):
        resolve_factor(4, 10.0, (40.0, 4.0, 4.0))
    with pytest.raises(UsageError):
        resolve_factor(None, None, (40.0, 4.0, 4.0))
    with pytest.raises(UsageError):
        resolve_factor(1, None, (40.0, 4.0, 4.0))
    assert output_depth(10, 4) == 37 and positions(4) == [0.25, 0.5, 0.75]

    src = write_h5(tmp_path / "in.h5", stack(depth=3, size=32))
    out = tmp_path / "t.h5"
    result = run(src, "--target-z", "20", "-o", str(out), "--model", "linear", "--no-repair", "--no-progress")
    assert result.exit_code == 0 and "factor 2" in result.output and "20 nm" in result.output
    assert read_all(out)[0].shape == (5, 32, 32)
    unknown = write_h5(tmp_path / "unknown.h5", stack(depth=3, size=32), resolution=(np.nan,) * 3)
    assert_one_line_error(run(unknown, "--target-z", "10", "-o", str(tmp_path / "u.h5")))
    assert_one_line_error(run(src, "--target-z", "30", "-o", str(tmp_path / "u.h5")), 2)


def test_dry_run_writes_nothing_and_refusals(tmp_path: Path) -> None:
    src = write_h5(tmp_path / "in.h5", stack(depth=4))
    out, masks, summary = tmp_path / "out.h5", tmp_path / "masks.h5", tmp_path / "plan.json"
    dry = run(src, "--factor", "4", "-o", str(out), "--masks", str(masks), "--model", "flow", "--dry-run",
              "--save-report", str(summary))
    assert dry.exit_code == 0, dry.output
    assert "plan (dry run" in dry.output and "13 x 48 x 48" in dry.output and "10 x 4 x 4 nm" in dry.output
    assert not out.exists() and not masks.exists()
    plan = json.loads(summary.read_text())
    assert plan["dry_run"] and plan["output_shape"] == [13, 48, 48] and plan["tiles_per_section"] >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5", "plan.json"]

    assert_one_line_error(run(src, "--factor", "1", "-o", str(out)), 2)
    assert_one_line_error(run(src, "-o", str(out)), 2)
    assert_one_line_error(run(src, "--factor", "2", "-o", src, "--no-repair", "--model", "linear"))
    one = write_h5(tmp_path / "one.h5", stack(depth=1))
    assert_one_line_error(run(one, "--factor", "2", "-o", str(tmp_path / "o.h5")))
    out.touch()
    assert_one_line_error(run(src, "--factor", "2", "-o", str(out), "--no-repair", "--model", "linear"))
    assert_one_line_error(run(src, "--factor", "2", "--no-repair", "--sections", "1", "-o", str(tmp_path / "o.h5")), 2)
    with pytest.raises(OutputError):
        run_upsample(src, None, UpsampleOptions(factor=2, model="linear", repair=False))


def test_repair_replaces_a_blank_section_and_no_repair_keeps_it(tmp_path: Path) -> None:
    data = stack(depth=5)
    data[2] = 0
    src = write_h5(tmp_path / "in.h5", data)
    repaired, kept, masks = tmp_path / "repaired.h5", tmp_path / "kept.h5", tmp_path / "masks.h5"
    summary = tmp_path / "run.json"
    result = run(src, "--factor", "2", "-o", str(repaired), "--model", "linear", "--masks", str(masks),
                 "--save-report", str(summary), "--no-progress")
    assert result.exit_code == 0, result.output
    up, _ = read_all(repaired)
    halfway = (data[1].astype(np.float64) + data[3]) / 2
    assert np.abs(up[4] - halfway).max() <= 0.5 + 1e-3
    assert np.abs(up[3] - (data[1].astype(np.float64) + up[4]) / 2).max() <= 1.0 + 1e-3
    for z in (0, 1, 3, 4):
        np.testing.assert_array_equal(up[2 * z], data[z])
    labels, _ = read_all(masks)
    assert labels.shape == up.shape and labels.dtype == np.uint8
    assert [int(labels[z, 0, 0]) for z in range(9)] == [0, 9, 0, 9, 1, 9, 0, 9, 0]
    assert INTERPOLATED_LABEL == 9  # its own value: 1, 2, 3 are missing, fold band and partial, as in fix
    record = json.loads(summary.read_text())
    assert record["repaired_input_sections"] == [2] and record["repaired_output_sections"] == [4]
    with h5py.File(repaired) as f:
        provenance = f["raw"].attrs["emrepair"]
    provenance = json.loads(provenance) if isinstance(provenance, (str, bytes)) else provenance
    assert provenance["command"] == "upsample-z" and provenance["factor"] == 2
    assert provenance["repaired_sections"] == [4]

    result = run(src, "--factor", "2", "-o", str(kept), "--model", "linear", "--no-repair", "--no-progress")
    assert result.exit_code == 0, result.output
    up, _ = read_all(kept)
    assert (up[4] == 0).all()
    assert np.abs(up[3] - data[1].astype(np.float64) / 2).max() <= 0.5 + 1e-3


def test_streaming_reads_each_section_once(tmp_path: Path) -> None:
    data = stack(depth=9, size=32)
    vol = CountingVolume(data, (40.0, 4.0, 4.0))
    upsample_volume(vol, str(tmp_path / "plain.h5"),
                    UpsampleOptions(factor=3, model="linear", repair=False, device="cpu"))
    assert vol.reads == list(range(9))

    vol = CountingVolume(data, (40.0, 4.0, 4.0))
    pairs: list[tuple[int, int]] = []
    upsample_volume(vol, str(tmp_path / "repaired.h5"),
                    UpsampleOptions(factor=3, model="linear", sections=[0, 4, 5], device="cpu"),
                    progress=lambda done, total: pairs.append((done, total)))
    assert vol.reads == [1, 2, 3, 6, 7, 8]  # each good section once: repair neighbours come from a small cache
    assert pairs[0] == (0, 8) and pairs[-1] == (8, 8)
    up, _ = read_all(tmp_path / "repaired.h5")
    np.testing.assert_array_equal(up[0], data[1])  # the stack's first section is a copy of its neighbour


def test_stream_holds_a_bounded_number_of_sections(tmp_path: Path) -> None:
    """The output is written in z order while the input is read, never after reading all of it."""
    data = stack(depth=8, size=32)
    vol = CountingVolume(data)
    order: list[tuple[str, int]] = []
    original_read = vol.read_section

    def read(z: int) -> np.ndarray:
        order.append(("read", z))
        return original_read(z)

    vol.read_section = read  # type: ignore[method-assign]
    from emrepair.engine import EngineConfig, TiledInterpolator
    from emrepair.models import load_model
    from emrepair.pipelines.upsample.stream import stream_upsampled

    engine = TiledInterpolator(load_model("linear")[0], EngineConfig(device="cpu"))
    stream_upsampled(vol, 4, [], engine, {}, lambda z, section, label: order.append(("write", z)))
    written = [z for kind, z in order if kind == "write"]
    assert written == list(range(29))
    for z in range(1, 8):
        # Section z is read only after every output section up to the previous original is written.
        assert order.index(("read", z)) > order.index(("write", 4 * (z - 1)))
        assert order.index(("read", z)) < order.index(("write", 4 * (z - 1) + 1))
