"""Golden hashes: run detect, fix, upsample-z, eval and a short train on tiny seeded volumes and hash their outputs.

A script, not a test (it takes a minute or two on one CPU thread). It drives the ``emrepair`` command line
in-process, so it keeps working while the modules behind the commands move; a refactor that changes no
behaviour leaves every hash as it was.

    python benchmarks/golden.py --write benchmarks/golden.json    # record (before a refactor)
    python benchmarks/golden.py --check benchmarks/golden.json    # compare (after it); exit 1 on a change
    python benchmarks/golden.py --only fix-linear,detect         # a few cases, hashes printed

The cases: detect (report and masks), fix with linear and flowunet on a synthetic stack with a blank and a
torn section, fix with the sff fold model on a crop of the bundled sample around its fold, fix with reslice
on a crop of a FIB-SEM stack from ../shared/data (skipped when absent), upsample-z with linear (repairing
first) and flowunet, eval with linear, flow and flowunet, and a seeded 4-step flowunet train (hash of its weights).
Outputs are hashed as arrays (shape, dtype, bytes); JSON reports lose their run-dependent fields (times,
paths, run ids, versions) first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import h5py
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
FIBSEM = DATA / "gala_fib_example.h5"
SAMPLE = ROOT / "emrepair" / "data" / "sample.h5"

# Report fields that differ from run to run (or machine to machine) and say nothing about the result.
VOLATILE = {"seconds", "s_per_mp", "elapsed", "started", "finished", "time", "timestamp", "created", "run_id",
            "version", "emrepair_version", "torch", "host", "hostname", "pid", "input", "output", "path", "masks",
            "report", "device", "curves", "state", "date", "duration", "threads", "peak_memory", "memory",
            "workers", "executor", "tile_seconds", "minutes", "weights_path", "checkpoint", "memory_estimate_bytes",
            "host_memory_bytes", "estimated_seconds", "seconds_per_megapixel"}


def deterministic() -> None:
    """One CPU thread, deterministic kernels, OpenCV single-threaded."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def synthetic_stack(depth: int = 10, size: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth textured uint8 sections drifting along z, with section 4 blank and section 7 half torn away."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    p = rng.uniform(0, 2 * np.pi, 4)
    unit = np.stack([np.sin(xx / 5 + p[0] + 0.25 * z) + np.cos(yy / 6 + p[1] - 0.2 * z)
                     + 0.6 * np.sin((xx + yy) / 8 + p[2] + 0.1 * z) + 0.3 * np.cos((xx - yy) / 4 + p[3])
                     for z in range(depth)])
    unit = (unit - unit.min()) / (unit.max() - unit.min())
    noisy = unit + rng.normal(0, 0.02, unit.shape)
    data = np.clip(np.round(30 + 190 * noisy), 0, 255).astype(np.uint8)
    data[4] = 0
    data[7, :, size // 2:] = 0
    return data


def write_h5(path: Path, data: np.ndarray, resolution: tuple[float, float, float]) -> str:
    """A one-dataset HDF5 file ``raw`` with a voxel size."""
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=data, chunks=(1, *data.shape[1:]))
        f["raw"].attrs["resolution"] = resolution
    return str(path)


def hash_array(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.shape}|{array.dtype.str}|".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def hash_volume(path: Path) -> str:
    """One hash over every array in a volume file (HDF5), in name order; attributes (provenance) are left out."""
    arrays: dict[str, str] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, hash_array(obj[()]))
                     if isinstance(obj, h5py.Dataset) else None)
    return hash_text(json.dumps(arrays, sort_keys=True))


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stable(value: Any) -> Any:
    """A JSON value without its run-dependent fields, floats rounded to 6 significant digits."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def hash_json(path: Path) -> str:
    """Hash of a JSON report's stable fields, the scratch folder's name replaced by WORK."""
    text = Path(path).read_text().replace(str(Path(path).parent), "WORK")
    return hash_text(json.dumps(stable(json.loads(text)), sort_keys=True))


def hash_checkpoint(path: Path) -> str:
    """Hash of a checkpoint's tensors (the weights), in key order."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    state = blob.get("state_dict", blob.get("model", blob)) if isinstance(blob, dict) else blob
    parts = {k: hash_array(v.detach().cpu().numpy()) for k, v in sorted(state.items()) if torch.is_tensor(v)}
    return hash_text(json.dumps(parts, sort_keys=True))


def cli(*args: str) -> None:
    """Run one emrepair command in-process; raise with its output when it fails."""
    from typer.testing import CliRunner

    from emrepair.cli.app import app

    result = CliRunner().invoke(app, list(args))
    if result.exit_code != 0:
        raise RuntimeError(f"emrepair {' '.join(args)} exited {result.exit_code}:\n{result.output}")


COMMON = ("--device", "cpu", "--no-progress", "--batch-size", "2")


class Cases:
    """The golden cases; each returns {name: hash} for its outputs."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.synth = write_h5(work / "synth.h5", synthetic_stack(), (40.0, 4.0, 4.0))
        self.clean = write_h5(work / "clean.h5", synthetic_stack(seed=1)[:4], (40.0, 4.0, 4.0))

    def out(self, name: str) -> Path:
        return self.work / name

    def detect(self) -> dict[str, str]:
        report, masks = self.out("detect.json"), self.out("detect_masks.h5")
        cli("detect", self.synth, "--report", str(report), "--masks", str(masks), "--no-progress")
        return {"detect.report": hash_json(report), "detect.masks": hash_volume(masks)}

    def _run(self, command: str, tag: str, src: str, *extra: str) -> dict[str, str]:
        """A blockwise command (fix, upsample-z) with -o, --masks and --save-report; the hashes of all three."""
        out, masks, report = self.out(f"{tag}.h5"), self.out(f"{tag}_masks.h5"), self.out(f"{tag}.json")
        cli(command, src, "-o", str(out), "--masks", str(masks), "--save-report", str(report), *COMMON, *extra)
        return {f"{tag}.output": hash_volume(out), f"{tag}.masks": hash_volume(masks), f"{tag}.report": hash_json(report)}

    def _fix(self, tag: str, src: str, *extra: str) -> dict[str, str]:
        return self._run("fix", tag, src, *extra)

    def fix_linear(self) -> dict[str, str]:
        return self._fix("fix-linear", self.synth, "--model", "linear", "--fold-model", "none")

    def fix_flowunet(self) -> dict[str, str]:
        return self._fix("fix-flowunet", self.synth, "--model", "flowunet", "--fold-model", "none")

    def fix_sff(self) -> dict[str, str]:
        """The bundled sample's fold (section 13) in a 7-section crop, repaired by sff over linear."""
        with h5py.File(SAMPLE, "r") as f:
            crop = f["raw"][10:17, :160, :160]
        src = write_h5(self.out("fold.h5"), crop, (40.0, 10.0, 10.0))
        report = self.out("fold_detect.json")
        cli("detect", src, "--report", str(report), "--no-progress")
        hashes = self._fix("fix-sff", src, "--model", "linear", "--fold-model", "sff", "--report", str(report))
        summary = json.loads(self.out("fix-sff.json").read_text())
        if summary.get("fold_model") != "sff" or not summary.get("fold_repaired"):
            raise RuntimeError(f"the fold case repaired no fold with sff: {summary}")
        return {"fix-sff.detect": hash_json(report), **hashes}

    def fix_reslice(self) -> dict[str, str]:
        """A FIB-SEM crop (10 nm isotropic assumed) with one section blanked, repaired by reslice."""
        if not FIBSEM.is_file():
            return {}
        with h5py.File(FIBSEM, "r") as f:
            crop = f["raw"][:12, :64, :64].copy()
        crop[6] = 0
        src = write_h5(self.out("fib.h5"), crop, (10.0, 10.0, 10.0))
        return self._fix("fix-reslice", src, "--model", "reslice", "--sections", "6")

    def _upsample(self, tag: str, src: str, *extra: str) -> dict[str, str]:
        return self._run("upsample-z", tag, src, *extra)

    def upsample_linear(self) -> dict[str, str]:
        return self._upsample("upsample-linear", self.synth, "--factor", "2", "--model", "linear")

    def upsample_flowunet(self) -> dict[str, str]:
        return self._upsample("upsample-flowunet", self.clean, "--factor", "3", "--model", "flowunet",
                              "--no-repair")

    def eval(self) -> dict[str, str]:
        from typer.testing import CliRunner

        from emrepair.cli.app import app

        clean = write_h5(self.out("eval.h5"), synthetic_stack(depth=8, seed=2)[:4], (40.0, 4.0, 4.0))
        result = CliRunner().invoke(app, ["eval", clean, "--model", "linear", "--model", "flowunet", "--json", "--no-detect", *COMMON])
        if result.exit_code != 0:
            raise RuntimeError(result.output)
        return {"eval.json": hash_text(json.dumps(stable(json.loads(result.stdout)), sort_keys=True))}

    def train(self) -> dict[str, str]:
        stack = np.stack([synthetic_stack(depth=12, seed=3)[z] for z in (0, 1, 2, 3, 5, 6, 8, 9, 10, 11)])
        src = write_h5(self.out("train_in.h5"), stack, (40.0, 4.0, 4.0))
        ckpt = self.out("train.pt")
        cli("train", src, "-o", str(ckpt), "--model", "flowunet", "--steps", "4", "--batch-size", "2",
            "--patch-size", "32", "--device", "cpu", "--seed", "0", "--no-detect", "--no-progress")
        return {"train.flowunet-weights": hash_checkpoint(ckpt)}


CASES: dict[str, Callable[[Cases], dict[str, str]]] = {
    "detect": Cases.detect, "fix-linear": Cases.fix_linear, "fix-flowunet": Cases.fix_flowunet,
    "fix-sff": Cases.fix_sff, "fix-reslice": Cases.fix_reslice, "upsample-linear": Cases.upsample_linear,
    "upsample-flowunet": Cases.upsample_flowunet, "eval": Cases.eval, "train": Cases.train,
}


def run(names: list[str], keep: Path | None = None) -> tuple[dict[str, str], dict[str, float]]:
    """Run the named cases in a scratch folder (or in ``keep``, left in place); return their hashes and seconds."""
    deterministic()
    hashes: dict[str, str] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="emrepair-golden-") as tmp:
        work = Path(tmp) if keep is None else keep
        work.mkdir(parents=True, exist_ok=True)
        cases = Cases(work)
        for name in names:
            start = time.perf_counter()
            hashes.update(CASES[name](cases))
            seconds[name] = round(time.perf_counter() - start, 1)
    return hashes, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="record the hashes in this JSON file")
    parser.add_argument("--check", type=Path, help="compare with the hashes in this JSON file")
    parser.add_argument("--only", help="comma-separated cases (default all): " + ", ".join(CASES))
    parser.add_argument("--keep", type=Path, help="run in this (empty) folder and leave the outputs there")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}")
    hashes, seconds = run(names, args.keep)
    print(json.dumps({"seconds": seconds}, indent=1))
    if args.write:
        args.write.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(hashes)} hashes to {args.write}")
    if args.check:
        expected = json.loads(args.check.read_text())
        changed = [k for k in hashes if k in expected and expected[k] != hashes[k]]
        new = [k for k in hashes if k not in expected]
        missing = [k for k in expected if k not in hashes and k.split(".")[0] in names]
        for key in changed:
            print(f"CHANGED {key}: {expected[key][:12]} -> {hashes[key][:12]}")
        for key in new:
            print(f"not recorded: {key}")
        for key in missing:
            print(f"not produced: {key}")
        print(f"{len(hashes) - len(changed) - len(new)} of {len(hashes)} hashes as recorded")
        return 1 if changed or missing else 0
    if not args.write:
        print(json.dumps(hashes, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
