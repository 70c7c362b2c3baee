"""Benchmark of fold repair end to end on family-B folds (the independent simulator) in held-out real sections.

Per stack (ssTEM ``isbi2012_train``/``vnc_stack1``; FIB-SEM ``neuroproof_medulla_train1`` decimated to 40 nm),
family-B folds (``emrepair.simulate.fold_b``: thin, wide, faint, broken, edge, two per section) are injected into
held-out sections (z % 5 == 2 of the original stack, never a training target of the shipped weights), the stack
is written to a temporary HDF5 file and repaired by ``run_fix`` with its own detection and default settings
("fix, own detection"). The same sections are also repaired with the true band mask by
``repair_fold_section`` (with and without ``finish_fold_repair``: "true mask" / "true mask, sff alone"), and
compared with mask-and-fill of the true band (band <- neighbours' mean), linear (the neighbours' mean for the
whole section) and the folded section untouched.

Figures: whole-section PSNR/SSIM, PSNR on the true band, and the residue (``emrepair.engine.fold_residue``):
share of band pixels darker than the neighbours' darkest 2 % at that place (the clean section scores about
that share too), the seam contrast in a ring around the band (grey levels of 255), and the pixels changed
outside the masks that ``fix --masks`` wrote.

    nice -n 10 python benchmarks/bench_fix_folds.py [--data ../shared/data] [--per-stack 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from emrepair.models import load_model
from emrepair.engine.fold_repair import mask_and_fill, repair_fold_section
from emrepair.engine.fold_residue import changed_outside, dark_residue, seam_contrast
from emrepair.engine.metrics import psnr, ssim
from emrepair.simulate.fold_b import simulate_fold_b
from emrepair.training.stacks import is_held_out

STACKS = {"isbi2012_train": 1, "vnc_stack1": 1, "neuroproof_medulla_train1": 4}  # name -> z decimation
METHODS = ("folded", "linear", "mask_and_fill (true band)", "true mask, sff alone", "true mask", "fix, own detection")


def load_stack(data: Path, name: str, step: int) -> tuple[np.ndarray, list[int], list[float]]:
    """The (decimated) stack, its original z indices and its resolution (z, y, x) in nm."""
    with h5py.File(data / f"{name}.h5", "r") as f:
        raw = f["raw"][:]
        res = [float(v) for v in f["raw"].attrs.get("resolution", [np.nan] * 3)]
    zs = list(range(2, raw.shape[0], step)) if step > 1 else list(range(raw.shape[0]))
    res[0] = res[0] * step
    return raw[zs], zs, res


def folded_sections(orig_z: list[int], count: int) -> list[int]:
    """Up to ``count`` interior held-out sections, evenly spread (indices into the decimated stack)."""
    cands = [k for k, z in enumerate(orig_z) if is_held_out(z) and 0 < k < len(orig_z) - 1]
    pick = np.linspace(0, len(cands) - 1, min(count, len(cands))).round().astype(int)
    return [cands[i] for i in sorted(set(pick))]


def run_fix_on(stack: np.ndarray, res: list[float], tmp: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """``run_fix`` with its own detection and default options: (output, masks, seconds)."""
    from emrepair.pipelines.fix import FixOptions, run_fix

    src, out, masks = tmp / "in.h5", tmp / "out.h5", tmp / "masks.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("raw", data=stack, chunks=(1, *stack.shape[1:]))
        f["raw"].attrs["resolution"] = res
    start = time.perf_counter()
    run_fix(str(src), str(out), FixOptions(masks_path=str(masks)))
    seconds = time.perf_counter() - start
    with h5py.File(out, "r") as f:
        fixed = f[next(iter(f.keys()))][:]
    with h5py.File(masks, "r") as f:
        labels = f[next(iter(f.keys()))][:]
    return fixed, labels, seconds


def score(image: np.ndarray, truth: np.ndarray, left: np.ndarray, right: np.ndarray, band: np.ndarray) -> dict:
    """The figures of one repaired section (float32 in [0, 1])."""
    return {"psnr": psnr(image, truth), "ssim": ssim(image, truth),
            "psnr_band": psnr(image[band][None], truth[band][None]) if band.any() else float("nan"),
            "dark_pct": dark_residue(image, left, right, band),
            "seam": seam_contrast(image, truth, band)}


def bench_stack(data: Path, name: str, step: int, args: argparse.Namespace, sff, rng) -> dict:
    """Every method on one stack; returns {method: {figure: [per section]}} and extras."""
    stack, orig_z, res = load_stack(data, name, step)
    ks = folded_sections(orig_z, args.per_stack)
    damaged = stack.copy()
    truths = {}
    for k in ks:
        fold = simulate_fold_b(stack[k], rng)
        damaged[k] = fold.image
        truths[k] = fold
    rows: dict[str, dict[str, list[float]]] = {m: {} for m in METHODS}
    extra: dict[str, float] = {}
    scale = np.float32(1 / 255)
    if not args.no_fix:
        with tempfile.TemporaryDirectory() as tmp:
            fixed, labels, seconds = run_fix_on(damaged, res, Path(tmp))
        extra["fix_seconds"] = seconds
        extra["outside_masks"] = int(changed_outside(damaged, fixed, labels))
        clean_changed = [k for k in range(len(stack)) if k not in truths and (fixed[k] != damaged[k]).any()]
        extra["clean_sections_changed"] = len(clean_changed)
    for k, fold in truths.items():
        truth = stack[k].astype(np.float32) * scale
        left, right = (stack[k + d].astype(np.float32) * scale for d in (-1, 1))
        folded = fold.image.astype(np.float32) * scale
        band = fold.band_mask
        outputs = {"folded": folded, "linear": 0.5 * (left + right),
                   "mask_and_fill (true band)": mask_and_fill(folded, left, right, band).image,
                   "true mask, sff alone": repair_fold_section(sff, folded, left, right, band, finish=False).image,
                   "true mask": repair_fold_section(sff, folded, left, right, band).image}
        if not args.no_fix:
            outputs["fix, own detection"] = fixed[k].astype(np.float32) * scale
        kinds = "+".join(f"{f.kind}{f.width_px:.0f}" for f in fold.folds)
        for method, image in outputs.items():
            for key, value in score(image, truth, left, right, band).items():
                rows[method].setdefault(key, []).append(value)
        if args.verbose:
            print(f"  {name} z={orig_z[k]} {kinds}: " + ", ".join(
                f"{m} {rows[m]['psnr'][-1]:.2f}" for m in outputs))
    return {"rows": rows, "extra": extra, "sections": [orig_z[k] for k in ks],
            "truth_dark_pct": float(np.mean([dark_residue(stack[k].astype(np.float32) * scale,
                                                          stack[k - 1].astype(np.float32) * scale,
                                                          stack[k + 1].astype(np.float32) * scale,
                                                          truths[k].band_mask) for k in truths]))}


def main() -> None:
    """Run the benchmark and print one markdown table per stack (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--stacks", nargs="+", default=list(STACKS), choices=list(STACKS))
    parser.add_argument("--per-stack", type=int, default=4, help="folded held-out sections per stack")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fix", action="store_true", help="skip the end-to-end fix run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sff = load_model("sff")[0]
    rng = np.random.default_rng(args.seed)
    summary = {}
    for name in args.stacks:
        out = bench_stack(args.data, name, STACKS[name], args, sff, rng)
        summary[name] = out
        print(f"\n{name} (held-out z {out['sections']}, family B, seed {args.seed}); "
              f"clean sections score dark {out['truth_dark_pct']:.1f} %; {out['extra']}")
        print("| method | PSNR (dB) | SSIM | band PSNR (dB) | dark residue (%) | seam (grey levels) |")
        print("|---|---|---|---|---|---|")
        for method, r in out["rows"].items():
            if r:
                m = {key: float(np.nanmean(v)) for key, v in r.items()}  # band PSNR: sections with a band
                print(f"| {method} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['psnr_band']:.2f} "
                      f"| {m['dark_pct']:.1f} | {m['seam']:.2f} |")
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
