"""Interrupted upsample-z runs go on with --continue to a bit-identical output; shares fill one output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import read_all, textured_stack, write_zarr
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.pipelines.fix import partial_path
from emrepair.pipelines.upsample.plan import plan_upsample_blocks
from emrepair.pipelines.upsample.stream import BlockStreamer
from emrepair.runstate import progress_dir_for

ROOT = Path(__file__).resolve().parents[1]
# Sections 4-5 form a repair run needed by two blocks (blocks are 6 output sections = 2 pairs here).
ARGS = ["--factor", "3", "--sections", "4-5,9", "--model", "linear", "--no-progress"]


def upsample(src: str, out: Path, *extra: str) -> object:
    """Run ``emrepair upsample-z`` in-process, with masks beside the output."""
    masks = out.with_name(out.name.replace(".zarr", "") + ".masks.zarr")
    return CliRunner().invoke(app, ["upsample-z", src, "-o", str(out), "--masks", str(masks), *ARGS, *extra])


def masks_of(out: Path) -> Path:
    """The masks path ``upsample`` gives ``out``."""
    return out.with_name(out.name.replace(".zarr", "") + ".masks.zarr")


def one_line_error(result: object) -> str:
    """The single ``error:`` line of a failed command (asserts there is exactly one line)."""
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.fixture
def source(tmp_path: Path) -> str:
    return write_zarr(tmp_path / "in.zarr", textured_stack(12, 40), chunks=(2, 32, 32))


@pytest.fixture
def reference(tmp_path: Path, source: str) -> tuple[np.ndarray, np.ndarray]:
    out = tmp_path / "ref.zarr"
    result = upsample(source, out)
    assert result.exit_code == 0, result.output
    return read_all(out), read_all(masks_of(out))


def test_blocks_cover_the_output_on_chunk_and_pair_boundaries() -> None:
    blocks = plan_upsample_blocks(12, 3, 2)
    assert [(b.start, b.stop) for b in blocks] == [(0, 6), (6, 12), (12, 18), (18, 24), (24, 30), (30, 34)]
    assert [list(b.pairs) for b in blocks][-2:] == [[8, 9], [10]]
    assert list(blocks[-1].originals) == [10, 11] and list(blocks[-1].needed) == [10, 11]


def test_interrupt_after_blocks_then_continue_is_bit_identical(
        tmp_path: Path, source: str, reference: tuple[np.ndarray, np.ndarray],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.zarr"
    original = BlockStreamer.write
    calls = [0]

    def interrupted(self: BlockStreamer, block: object, sink: object) -> None:
        calls[0] += 1
        if calls[0] == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # the CLI turns SIGTERM into Ctrl-C
        original(self, block, sink)

    monkeypatch.setattr(BlockStreamer, "write", interrupted)
    result = upsample(source, out)
    assert result.exit_code == 130, result.output
    assert "rerun the same command with --continue" in result.stderr
    assert not out.exists() and partial_path(out).is_dir()
    assert len(os.listdir(progress_dir_for(out) / "done")) == 2
    monkeypatch.setattr(BlockStreamer, "write", original)

    again = upsample(source, out)  # without --continue: refused, nothing removed
    assert again.exit_code == 1 and "--continue" in one_line_error(again) and partial_path(out).is_dir()
    other = upsample(source, out, "--continue", "--blend", "hann")
    assert other.exit_code == 2 and "blend" in one_line_error(other)

    summary = tmp_path / "s.json"
    done = upsample(source, out, "--continue", "--save-report", str(summary))
    assert done.exit_code == 0, done.output
    assert json.loads(summary.read_text())["blocks"] == {"total": 6, "skipped_as_done": 2, "left": 0}
    np.testing.assert_array_equal(read_all(out), reference[0])
    np.testing.assert_array_equal(read_all(masks_of(out)), reference[1])
    assert not progress_dir_for(out).exists() and not partial_path(out).exists()


def test_sigkill_mid_block_then_continue_is_bit_identical(
        tmp_path: Path, source: str, reference: tuple[np.ndarray, np.ndarray]) -> None:
    out = tmp_path / "out.zarr"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from emrepair.pipelines.upsample import stream as upsample_stream
        from emrepair.pipelines.upsample import UpsampleOptions, run_upsample
        original = upsample_stream.BlockStreamer.write
        calls = [0]
        def dying(self, block, sink):
            calls[0] += 1
            def half(z, section, label):
                if calls[0] == 4 and z == block.start + 3:  # halfway through the 4th block
                    os.kill(os.getpid(), signal.SIGKILL)
                sink(z, section, label)
            original(self, block, half)
        upsample_stream.BlockStreamer.write = dying
        run_upsample({source!r}, {str(out)!r}, UpsampleOptions(factor=3, model="linear", sections=[4, 5, 9],
                     masks_path={str(masks_of(out))!r}, device="cpu"))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert len(os.listdir(progress_dir_for(out) / "done")) == 3
    done = upsample(source, out, "--continue")
    assert done.exit_code == 0, done.output
    np.testing.assert_array_equal(read_all(out), reference[0])
    np.testing.assert_array_equal(read_all(masks_of(out)), reference[1])


def test_three_shares_equal_one_run(tmp_path: Path, source: str,
                                    reference: tuple[np.ndarray, np.ndarray]) -> None:
    out = tmp_path / "shared.zarr"
    for i in (1, 2, 3):
        result = upsample(source, out, "--part", f"{i}/3")
        assert result.exit_code == 0, result.output
        if i < 3:
            assert "share done" in result.stderr and not out.exists()
    np.testing.assert_array_equal(read_all(out), reference[0])
    np.testing.assert_array_equal(read_all(masks_of(out)), reference[1])
    assert not progress_dir_for(out).exists()


def test_parts_refuse_single_file_outputs(tmp_path: Path, source: str) -> None:
    for name in ("out.h5", "out.tif"):
        result = CliRunner().invoke(app, ["upsample-z", source, "-o", str(tmp_path / name), *ARGS,
                                          "--part", "1/2"])
        assert result.exit_code == 2
        assert "several processes" in one_line_error(result)
        assert not (tmp_path / name).exists()


def test_two_worker_processes_equal_one_run(tmp_path: Path, source: str,
                                            reference: tuple[np.ndarray, np.ndarray]) -> None:
    out = tmp_path / "workers.zarr"
    result = upsample(source, out, "--workers", "2", "--executor", "process")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_all(out), reference[0])
    np.testing.assert_array_equal(read_all(masks_of(out)), reference[1])
