"""Kills and concurrent writers against `emrepair fix`, per output format: is anything wrong yet complete?

    python benchmarks/bench_run_safety.py [--trials 20] [--formats h5 zarr tif folder] [--seed 0]

Input: a 16 x 96 x 96 uint8 HDF5 stack (chunks 4 x 48 x 48) of smooth random texture with sections 4, 9 and 10
blanked, repaired with ``--model linear --sections 4,9-10 --fold-model none`` into ``out.<format>``; the
reference output is one uninterrupted run. Two kinds of trial per format:

* **kill**: the fix is SIGKILLed at a random moment between 40 % and 105 % of its uninterrupted wall time (the
  first 40 % is mostly Python and torch starting), then finished with
  ``--continue`` (or started afresh when the kill came before the run had a record). Counted: an output at the
  final path whose pixels differ from the reference right after the kill (*wrong yet complete*), a finishing
  command that fails, a finished output that differs from the reference, hidden ``emrepair`` leftovers beside the
  output after the finish, and an input whose bytes changed.
* **two writers**: two identical fix commands start together on the same output. Counted: both exiting 0 with
  different outputs, an output that differs from the reference, an input whose bytes changed.

Prints one line per format and kind; every failure column should be 0.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emrepair.io import open_volume  # noqa: E402

SUFFIX = {"h5": "out.h5", "zarr": "out.zarr", "tif": "out.tif", "folder": "out_sections"}
ARGS = ["--model", "linear", "--sections", "4,9-10", "--fold-model", "none", "--no-progress", "--device", "cpu"]


def make_input(path: Path) -> None:
    """The test stack (see the module docstring)."""
    rng = np.random.default_rng(0)
    base = rng.random((16, 24, 24))
    stack = np.kron(base, np.ones((1, 4, 4)))
    stack = (255 * (stack + 0.2 * rng.random(stack.shape)) / 1.2).astype(np.uint8)
    stack[[4, 9, 10]] = 0
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=stack, chunks=(4, 48, 48), compression="gzip")
        f["raw"].attrs["resolution"] = np.array([40.0, 4.0, 4.0])


def fix_cmd(inp: Path, out: Path, *extra: str) -> list[str]:
    """The fix command line of every trial."""
    return [sys.executable, "-m", "emrepair", "fix", str(inp), "-o", str(out), *ARGS, *extra]


def read_output(path: Path) -> np.ndarray | None:
    """The output's pixels, or None when nothing readable is at the final path."""
    if not path.exists():
        return None
    try:
        with open_volume(str(path)) as vol:
            return np.stack([vol.read_section(z) for z in range(vol.shape[0])])
    except Exception:  # an unreadable thing at the final path counts as wrong, by the caller
        return np.zeros(0)


def digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Hidden emrepair names beside the output after a finished run."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and "emrepair" in p.name]


def kill_trial(inp: Path, out: Path, ref: np.ndarray, delay: float) -> dict[str, int]:
    """One kill trial (see the module docstring); counts of each failure."""
    counts = dict(wrong_complete=0, finish_failed=0, finished_wrong=0, leftovers=0)
    proc = subprocess.Popen(fix_cmd(inp, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    time.sleep(delay)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    early = read_output(out)
    if early is not None and (early.shape != ref.shape or not np.array_equal(early, ref)):
        counts["wrong_complete"] += 1
    done = subprocess.run(fix_cmd(inp, out, "--continue"), capture_output=True, text=True)
    if done.returncode != 0 and "--continue" in done.stderr and early is None:
        done = subprocess.run(fix_cmd(inp, out), capture_output=True, text=True)
    if done.returncode != 0:
        counts["finish_failed"] += 1
        print(f"  finish failed after {delay:.2f} s: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    final = read_output(out)
    if final is None or final.shape != ref.shape or not np.array_equal(final, ref):
        counts["finished_wrong"] += 1
    if leftovers(out.parent):
        counts["leftovers"] += 1
        print(f"  leftovers after {delay:.2f} s: {leftovers(out.parent)}", file=sys.stderr)
    return counts


def writers_trial(inp: Path, out: Path, ref: np.ndarray) -> dict[str, int]:
    """One two-writers trial; counts of each failure."""
    counts = dict(both_ok_differ=0, output_wrong=0, none_ok=0)
    procs = [subprocess.Popen(fix_cmd(inp, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    codes = [p.wait() for p in procs]
    final = read_output(out)
    wrong = final is None or final.shape != ref.shape or not np.array_equal(final, ref)
    if codes == [0, 0] and wrong:
        counts["both_ok_differ"] += 1
    if 0 in codes and wrong:
        counts["output_wrong"] += 1
    if 0 not in codes:
        counts["none_ok"] += 1
    return counts


def main(argv: list[str] | None = None) -> None:
    """Run the trials and print a line per format and kind."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--formats", nargs="+", default=list(SUFFIX), choices=list(SUFFIX))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inp = work / "in.h5"
        make_input(inp)
        before = digest(inp)
        for fmt in args.formats:
            ref_path = work / f"ref-{fmt}" / SUFFIX[fmt]
            ref_path.parent.mkdir()
            start = time.perf_counter()
            subprocess.run(fix_cmd(inp, ref_path), check=True, capture_output=True)
            wall = time.perf_counter() - start
            ref = read_output(ref_path)
            assert ref is not None
            totals: dict[str, dict[str, int]] = {"kill": {}, "writers": {}}
            for trial in range(args.trials):
                for kind in ("kill", "writers"):
                    folder = work / f"{fmt}-{kind}-{trial}"
                    folder.mkdir()
                    out = folder / SUFFIX[fmt]
                    if kind == "kill":
                        got = kill_trial(inp, out, ref, wall * rng.uniform(0.4, 1.05))
                    else:
                        got = writers_trial(inp, out, ref)
                    for key, value in got.items():
                        totals[kind][key] = totals[kind].get(key, 0) + value
            changed = int(digest(inp) != before)
            for kind, counts in totals.items():
                cells = "  ".join(f"{k} {v}" for k, v in counts.items())
                print(f"{fmt:6s} {kind:7s} trials {args.trials}  {cells}  input_changed {changed}  "
                      f"(uninterrupted run {wall:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
