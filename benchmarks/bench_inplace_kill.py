"""SIGKILL an in-place HDF5 repair at random moments, then --undo: is every section back and readable?

The case of issue #23 item 6: gzip chunks that span several sections ((4, 256, 256) by default), several repaired
sections, and a real SIGKILL at any moment (not only between writes, as tests/test_inplace_kill.py does). Each
trial copies a fresh input, starts ``run_fix_in_place`` in a child process, kills it after a random delay within
the time an uninterrupted run spends writing the input (from its backup's manifest on), then runs ``undo_in_place`` (or ``--continue`` then undo) and compares
every section with the original.

    python benchmarks/bench_inplace_kill.py --trials 12
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

CHILD = """
import sys
from emrepair.pipelines.fix import FixOptions
from emrepair.pipelines.inplace import run_fix_in_place
opts = FixOptions(model="linear", fold_model="none", device="cpu", sections=[int(s) for s in sys.argv[2].split(",")])
run_fix_in_place(sys.argv[1], opts)
print("done", flush=True)
"""


def make_input(path: Path, depth: int, size: int, chunks: tuple[int, int, int]) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(depth, size // 8, size // 8))
    data = np.kron(base, np.ones((1, 8, 8)))
    data = np.round(20 + 200 * (data - data.min()) / np.ptp(data)).astype(np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=data, chunks=chunks, compression="gzip")
    return data


def run_child(path: Path, sections: str, kill_after: float | None) -> tuple[str, float]:
    """Run the child on ``path``; with ``kill_after``, SIGKILL it that many seconds after its backup's manifest
    appears (the input is written from then on). Returns its end and the seconds from the manifest to the end."""
    from emrepair.pipelines.inplace import backup_dir_for

    manifest = backup_dir_for(path) / "manifest.json"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), sections], stdout=subprocess.PIPE, text=True)
    while not manifest.exists() and proc.poll() is None:
        time.sleep(0.002)
    started = time.perf_counter()
    if kill_after is None:
        proc.wait()
        return "done", time.perf_counter() - started
    time.sleep(kill_after)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return ("killed" if proc.returncode == -signal.SIGKILL else "done"), time.perf_counter() - started


def main() -> None:
    """Run the trials and print one line per trial and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--depth", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--chunks", default="4,256,256")
    parser.add_argument("--sections", default="5,6,13,22,30")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from emrepair.pipelines.fix import FixOptions
    from emrepair.pipelines.inplace import backup_dir_for, run_fix_in_place, undo_in_place
    from emrepair.pipelines.inplace_backup import backup_state

    chunks = tuple(int(c) for c in args.chunks.split(","))
    rnd = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        orig = Path(tmp) / "orig.h5"
        data = make_input(orig, args.depth, args.size, chunks)  # type: ignore[arg-type]
        timing = Path(tmp) / "timing.h5"
        shutil.copy(orig, timing)
        _, full = run_child(timing, args.sections, None)
        print(f"uninterrupted run: {full:.2f} s from its complete backup to its end")
        ok = killed = written = 0
        for trial in range(args.trials):
            work = Path(tmp) / f"t{trial}.h5"
            shutil.copy(orig, work)
            delay = rnd.uniform(0, full)
            state, _ = run_child(work, args.sections, delay)
            killed += state == "killed"
            backup = backup_state(backup_dir_for(work))
            how = "undo"
            try:
                if backup != "none" and trial % 2:
                    how = "continue+undo"
                    sections = [int(s) for s in args.sections.split(",")]
                    run_fix_in_place(str(work), FixOptions(model="linear", fold_model="none", device="cpu",
                                                           sections=sections, continue_run=True))
                if backup_dir_for(work).exists():
                    undo_in_place(str(work))
                with h5py.File(work, "r") as f:
                    same = bool(np.array_equal(f["raw"][:], data))
            except Exception as exc:  # noqa: BLE001 - a benchmark reports every failure
                same = False
                how += f" failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            ok += same
            written += state == "killed" and backup == "complete"
            print(f"trial {trial}: kill {delay:.3f} s after the manifest -> {state}, backup {backup}, {how}: "
                  f"{'all sections identical' if same else 'NOT RESTORED'}")
        print(f"{ok}/{args.trials} restored bit for bit ({killed} killed mid-run, {written} of them with a complete "
              f"backup, i.e. while or just before writing the input)")


if __name__ == "__main__":
    main()
