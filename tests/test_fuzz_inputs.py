"""Malformed inputs never give a traceback, a hang, raw exception text or a changed input: `info`, `detect`, `fix`
and `upsample-z` exit 0, or 1/2 with one `error:` line of emrepair's own.

The generator lives in benchmarks/fuzz_inputs.py and benchmarks/fuzz_cases.py (the benchmark runs many more cases);
here every category runs ten times, seeded, with info and detect on each input and fix or upsample-z in turn.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from emrepair.errors import InputError
from emrepair.io import open_volume

ROOT = Path(__file__).resolve().parents[1]


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_inputs", ROOT / "benchmarks" / "fuzz_inputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_inputs"] = module
    spec.loader.exec_module(module)
    return module


def test_every_category_fails_cleanly(tmp_path: Path) -> None:
    fuzz = _fuzz_module()
    cases = 10 * len(fuzz.makers(tmp_path, {}, np.random.default_rng(0)))  # ten of each category
    failures, lines, ran = fuzz.run_cases(tmp_path / "run", cases, seed=7, limit_s=20.0, rotate=True)
    assert ran == 3 * cases
    summary = {kind: failures[kind] for kind in fuzz.FAILURE_KINDS}
    assert sum(summary.values()) == 0, f"{summary}\n" + "\n".join(lines[:10])


def test_the_judge_catches_each_failure_kind(tmp_path: Path) -> None:
    fuzz = _fuzz_module()
    case = fuzz.Case("x", tmp_path / "in.h5")
    named = fuzz.Case("folder entry", tmp_path / "secs", must_fail=True, names="s1.png")

    def result(code: int, stderr: str, tb: str | None = None) -> dict:
        return {"exit_code": code, "stderr": stderr, "traceback": tb}

    assert fuzz.judge(case, None) == "hang"
    assert fuzz.judge(case, result(1, "", "Traceback ...")) == "traceback"
    assert fuzz.judge(case, result(1, "error: internal error in `emrepair info` on x: KeyError: 'a'")) == "internal"
    assert fuzz.judge(case, result(1, "error: AttributeError: 'str' object has no attribute 'get'")) == "raw"
    assert fuzz.judge(case, result(1, "error: unpack requires a buffer of 4 bytes")) == "raw"
    assert fuzz.judge(case, result(1, "error: cannot read section 2: bad")) == "raw"  # does not name the input
    assert fuzz.judge(case, result(2, "Usage: emrepair fix\n╭─ Error ─╮\n│ bad │")) == "multiline"
    assert fuzz.judge(case, result(3, "error: x")) == "exit"
    assert fuzz.judge(named, result(0, "")) == "silent"
    assert fuzz.judge(named, result(1, "error: secs: section file s2.png is a FIFO")) == "unnamed"
    assert fuzz.judge(named, result(1, "error: secs: section file s1.png is a FIFO")) is None
    assert fuzz.judge(case, result(1, "warning: sparse\nerror: in.h5: corrupt compressed data (Error -3)")) is None
    assert fuzz.judge(case, result(0, "")) is None


def test_a_hung_command_is_killed_and_the_worker_restarts(tmp_path: Path) -> None:
    fuzz = _fuzz_module()
    worker = fuzz.Worker()
    try:
        assert worker.run(["models"], limit_s=0.001) is None  # far too short: counted as a hang, worker killed
        assert worker.proc is None
        again = worker.run(["--version"], limit_s=60.0)
        assert again is not None and again["exit_code"] == 0
    finally:
        worker.close()


def _zarr_with_meta(path: Path, change: dict) -> Path:
    zarr.open_array(str(path), mode="w", shape=(4, 8, 8), chunks=(2, 8, 8), dtype="uint8", zarr_format=2)[:] = 1
    meta = json.loads((path / ".zarray").read_text())
    meta.update(change)
    (path / ".zarray").write_text(json.dumps(meta))
    return path


def test_absurd_claimed_shape_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="implausible shape"):
        open_volume(_zarr_with_meta(tmp_path / "a.zarr", {"shape": [10**12, 8, 8]}))
    with pytest.raises(InputError, match="implausible shape"):
        open_volume(_zarr_with_meta(tmp_path / "b.zarr", {"shape": [4, 10**7, 10**7]}))


def test_zero_chunks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        open_volume(_zarr_with_meta(tmp_path / "c.zarr", {"chunks": [0, 0, 0]}))


def test_tifffile_warnings_stay_off_stderr() -> None:
    import emrepair.io.tiff_volume  # noqa: F401 - installs the handler

    handlers = logging.getLogger("tifffile").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_nan_sections_are_read_as_they_are(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f["raw"] = np.full((3, 8, 8), np.nan, dtype=np.float32)
    with open_volume(tmp_path / "nan.h5") as vol:
        assert np.isnan(vol.read_section(1)).all()
