"""Malformed inputs never give a traceback or a hang: `info` and `detect` exit 0, or 1/2 with one `error:` line.

The generator lives in benchmarks/fuzz_inputs.py (which runs many more cases); CI runs 200 of them.
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


def test_200_bad_inputs_fail_cleanly(tmp_path: Path) -> None:
    fuzz = _fuzz_module()
    problems = []
    for what, path in fuzz.generate(tmp_path, 200, seed=7):
        for command in ("info", "detect"):
            problem = fuzz.check_case(path, command, limit_s=10.0)
            if problem:
                problems.append(f"{command} {what} {path.name}: {problem}")
    assert not problems, "\n".join(problems[:10])


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
