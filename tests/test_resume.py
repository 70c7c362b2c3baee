"""Interrupted fix runs (SIGKILL, Ctrl-C, SIGTERM, a full disk) go on with --continue to a bit-identical output."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.distributed import repair
from emrepair.io.writers import zarr_writer
from emrepair.pipelines.fix import partial_path
from emrepair.runstate import progress_dir_for
from helpers import read_all, textured_stack, write_zarr

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--sections", "1,4-5,9", "--model", "linear", "--no-progress"]


def fix(src: str, out: Path, *extra: str) -> object:
    """Run ``emrepair fix`` in-process."""
    return CliRunner().invoke(app, ["fix", src, "-o", str(out), *ARGS, *extra])


@pytest.fixture
def source(tmp_path: Path) -> str:
    return write_zarr(tmp_path / "in.zarr", textured_stack(12, 48), chunks=(2, 32, 32))


@pytest.fixture
def reference(tmp_path: Path, source: str) -> np.ndarray:
    out = tmp_path / "ref.zarr"
    assert fix(source, out).exit_code == 0
    return read_all(out)


def test_sigkill_mid_block_then_continue_is_bit_identical(tmp_path: Path, source: str,
                                                          reference: np.ndarray) -> None:
    out = tmp_path / "out.zarr"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from emrepair.distributed import repair
        from emrepair.pipelines.fix import FixOptions, run_fix
        original = repair.BlockWriter._slab_region
        calls = [0]
        def dying(self, *args):
            calls[0] += 1
            if calls[0] == 4:  # in the middle of the run: earlier slabs are written, this block is not done
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, *args)
        repair.BlockWriter._slab_region = dying
        run_fix({source!r}, {str(out)!r}, FixOptions(model="linear", sections=[1, 4, 5, 9]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert not out.exists() and partial_path(out).is_dir()
    state = progress_dir_for(out)
    assert 0 < len(os.listdir(state / "done")) < 6
    again = fix(source, out)  # without --continue: refused, nothing removed
    assert again.exit_code == 1 and "--continue" in again.stderr and partial_path(out).is_dir()
    assert fix(source, out, "--continue").exit_code == 0
    np.testing.assert_array_equal(read_all(out), reference)
    assert not state.exists() and not partial_path(out).exists()


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_exits_130_and_continues(tmp_path: Path, source: str, reference: np.ndarray,
                                           monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    out = tmp_path / "out.zarr"
    original = repair.BlockWriter.write
    calls = [0]

    def interrupted(self: repair.BlockWriter, block: object) -> None:
        calls[0] += 1
        if calls[0] == 3:
            if how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            raise KeyboardInterrupt
        original(self, block)

    monkeypatch.setattr(repair.BlockWriter, "write", interrupted)
    result = fix(source, out)
    assert result.exit_code == 130
    assert "rerun the same command with --continue" in result.stderr
    monkeypatch.setattr(repair.BlockWriter, "write", original)
    skipped = fix(source, out, "--continue", "--save-report", str(tmp_path / "s.json"))
    assert skipped.exit_code == 0, skipped.output
    assert '"skipped_as_done": 2' in (tmp_path / "s.json").read_text()
    np.testing.assert_array_equal(read_all(out), reference)


def test_disk_full_keeps_a_resumable_output(tmp_path: Path, source: str, reference: np.ndarray,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.zarr"
    original = zarr_writer.ZarrWriter._write
    calls = [0]

    def full(self: zarr_writer.ZarrWriter, *args: object) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, *args)

    monkeypatch.setattr(zarr_writer.ZarrWriter, "_write", full)
    result = fix(source, out)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith("error:") and "No space left" in result.stderr and "--continue" in result.stderr
    assert partial_path(out).is_dir() and not out.exists()
    monkeypatch.setattr(zarr_writer.ZarrWriter, "_write", original)
    assert fix(source, out, "--continue").exit_code == 0
    np.testing.assert_array_equal(read_all(out), reference)


def test_continue_refuses_other_arguments_and_overwrite_restarts(tmp_path: Path, source: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.zarr"
    monkeypatch.setattr(repair.BlockWriter, "write", lambda self, block: (_ for _ in ()).throw(KeyboardInterrupt))
    assert fix(source, out).exit_code == 130
    monkeypatch.undo()
    other = CliRunner().invoke(app, ["fix", source, "-o", str(out), "--sections", "2", "--model", "linear",
                                     "--no-progress", "--continue"])
    assert other.exit_code == 2 and "sections" in other.stderr
    assert fix(source, out, "--overwrite").exit_code == 0 and out.is_dir()


def test_same_input_and_arguments_give_identical_output_on_cpu(tmp_path: Path, source: str) -> None:
    outs = [tmp_path / "a.zarr", tmp_path / "b.zarr"]
    for out in outs:
        result = CliRunner().invoke(app, ["fix", source, "-o", str(out), "--sections", "4-5", "--model", "flow",
                                          "--device", "cpu", "--no-progress"])
        assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_all(outs[0]), read_all(outs[1]))


def test_region_by_region_repair_matches_whole_sections_for_linear(tmp_path: Path, source: str) -> None:
    from emrepair.pipelines.fix import FixOptions, run_fix

    whole, tiled = tmp_path / "whole.h5", tmp_path / "tiled.h5"
    run_fix(source, str(whole), FixOptions(model="linear", sections=[4, 5], device="cpu"))
    run_fix(source, str(tiled), FixOptions(model="linear", sections=[4, 5], device="cpu", region_size=16))
    np.testing.assert_array_equal(read_all(whole), read_all(tiled))
