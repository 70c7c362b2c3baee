"""The GPU session's pieces that can run here: the script parses, staging crops stacks, throughput runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_session_script_parses() -> None:
    done = subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_session.sh")], capture_output=True)
    assert done.returncode == 0, done.stderr


def test_stage_crops_and_keeps_attributes(tmp_path: Path) -> None:
    from gpu_stage import save_stack

    src, dst = tmp_path / "a.h5", tmp_path / "b.h5"
    data = np.arange(6 * 40 * 30, dtype=np.uint8).reshape(6, 40, 30)
    with h5py.File(src, "w") as f:
        f.create_dataset("raw", data=data).attrs["resolution"] = np.array([40.0, 4.0, 4.0])
    save_stack(src, dst, side=20, depth=4)
    with h5py.File(dst, "r") as f:
        out = f["raw"][:]
        assert np.array_equal(out, data[:4, 10:30, 5:25])
        assert list(f["raw"].attrs["resolution"]) == [40.0, 4.0, 4.0]
        assert list(f["raw"].attrs["cropped_from"]) == [6, 40, 30]


def test_throughput_dry_run_writes_rows(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--dry-run",
                           "--device", "cpu", "--models", "linear", "--modes", "fp32", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert rows and rows[0]["model"] == "linear" and rows[0]["mpx_s"] > 0
