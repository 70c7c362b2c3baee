"""Benchmark of fold repair end to end on family-B folds (the independent simulator) in held-out real sections.

Per stack (ssTEM ``isbi2012_train``/``vnc_stack1``; FIB-SEM ``neuroproof_medulla_train1`` decimated to 40 nm),
family-B folds (``emrepair.simulate.fold_b``: thin, wide, faint, broken, edge, two per section) are injected into
held-out sections (z % 5 == 2 of the original stack, never a training target of the shipped weights), the stack
is written to a temporary HDF5 file and repaired by ``run_fix`` with its own detection and default settings
("fix, own detection"). The same sections are also repaired with the true band mask by
``repair_fold_section`` (with and without ``finish_fold_repair``: "true mask" / "true mask, sff alone"), and
compared with mask-and-fill of the true band (band <- neighbours' mean), linear (the neighbours' mean for the
whole section) and the folded section untouched. "end: ..." repairs each folded section as if it were the first or
last of its stack: from its own pixels and one neighbour (the previous section given as both), as ``FoldRepairer``
does there, against mask-and-fill from that one neighbour.

Figures: whole-section PSNR/SSIM, PSNR on the true band, and the residue (``emrepair.engine.fold_residue``):
share of band pixels darker than the neighbours' darkest 2 % at that place (the clean section scores about
that share too), the seam contrast in a ring around the band (grey levels of 255), the pixels changed
outside the masks that ``fix --masks`` wrote, and the pixels changed outside the true band and outside the
true band plus the pulled tissue (``pulled_mask``), as a share of the band's area, with the change of squared
error those changes made there ("harm": > 0 where they made it worse). Every figure is given for all folded
sections and per kind of fold (a section counts under each tag it has: thin / wide / faint from its folds'
kinds, edge when a fold runs along a border, two when it carries two folds), split into the true-band methods
and fix with its own detection.

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
from emrepair.engine import fold_repair
from emrepair.engine.fold_repair import mask_and_fill, repair_fold_section
from emrepair.engine.fold_residue import changed_outside, dark_residue, seam_contrast
from emrepair.engine.metrics import psnr, ssim
from emrepair.simulate.fold import FoldParams, simulate_fold
from emrepair.simulate.fold_b import FoldBInfo, FoldBResult, simulate_fold_b
from emrepair.training.stacks import is_held_out

STACKS = {"isbi2012_train": 1, "vnc_stack1": 1, "neuroproof_medulla_train1": 4}  # name -> z decimation
METHODS = ("folded", "linear", "mask_and_fill (true band)", "true mask, sff alone", "true mask", "fix, own detection",
           "end: mask_and_fill (true band)", "end: true mask")
TAGS = ("all", "thin", "wide", "faint", "edge", "two")


def load_stack(data: Path, name: str, step: int) -> tuple[np.ndarray, list[int], list[float]]:
    """The (decimated) stack, its original z indices and its resolution (z, y, x) in nm."""
    with h5py.File(data / f"{name}.h5", "r") as f:
        raw = f["raw"][:]
        res = [float(v) for v in f["raw"].attrs.get("resolution", [np.nan] * 3)]
    zs = list(range(2, raw.shape[0], step)) if step > 1 else list(range(raw.shape[0]))
    res[0] = res[0] * step
    return raw[zs], zs, res


def folded_sections(orig_z: list[int], count: int, train: bool = False) -> list[int]:
    """Up to ``count`` interior held-out sections (training sections with ``train``), evenly spread (indices
    into the decimated stack)."""
    cands = [k for k, z in enumerate(orig_z) if is_held_out(z) != train and 0 < k < len(orig_z) - 1]
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


# the development set: family A (what sff trains on) widened to thin and faint bands, on training sections
DEV_A = {"A": FoldParams(line_width=(2, 80), darkness=(0.3, 1.0), contrast_box_prob=0.25),
         "A-thin": FoldParams(line_width=(2, 6), darkness=(0.5, 1.0), contrast_box_prob=0.25),
         # family A with a wide, exponentially fading pull (e-folding 8..50 px, no cut-off at the reach)
         "A-pull": FoldParams(line_width=(2, 80), darkness=(0.3, 1.0), contrast_box_prob=0.25, dis_k=(0.02, 0.25),
                              pull_decay=(8.0, 50.0))}


def simulate(section: np.ndarray, rng: np.random.Generator, family: str):
    """A folded section of ``family`` "B" (``fold_b``) or "A" / "A-thin" / "A-pull" (``DEV_A``), with ``folds`` and
    ``pulled_mask``."""
    if family == "B":
        return simulate_fold_b(section, rng)
    fold = simulate_fold(section, rng, DEV_A[family])
    darkness = float(np.clip(1.0 - np.median(fold.image[fold.band_mask].astype(np.float32) + 1.0)
                             / (np.median(section[fold.band_mask].astype(np.float32)) + 1.0), 0.0, 1.0))
    kind = "thin" if fold.width_px <= 5 else "faint" if darkness < 0.7 else "wide"
    pulled = (np.hypot(*fold.displacement) >= 0.5) & ~fold.band_mask
    return FoldBResult(image=fold.image, band_mask=fold.band_mask, displacement=fold.displacement,
                       line=fold.line, width_px=fold.width_px,
                       folds=[FoldBInfo(kind, float(fold.width_px), fold.line, darkness)], pulled_mask=pulled)


def tags(fold) -> list[str]:
    """The tags of a family-B section: "all", its folds' kinds, "edge" and "two" where they apply."""
    out = ["all"] + sorted({f.kind for f in fold.folds})
    if any("edge" in f.features for f in fold.folds):
        out.append("edge")
    if len(fold.folds) > 1:
        out.append("two")
    return out


def score(image: np.ndarray, truth: np.ndarray, folded: np.ndarray, left: np.ndarray, right: np.ndarray,
          band: np.ndarray, pulled: np.ndarray) -> dict:
    """The figures of one repaired section (float32 in [0, 1])."""
    # as stored: the stacks are uint8, so a change that rounds back to the folded value is no change
    changed = np.rint(image * 255.0) != np.rint(folded * 255.0)
    area = max(int(band.sum()), 1)
    out = {"psnr": psnr(image, truth), "ssim": ssim(image, truth),
           "psnr_band": psnr(image[band][None], truth[band][None]) if band.any() else float("nan"),
           "dark_pct": dark_residue(image, left, right, band),
           "seam": seam_contrast(image, truth, band)}
    for key, zone in (("out_band", ~band), ("out_pull", ~band & ~pulled)):
        where = changed & zone
        out[key + "_pct"] = 100.0 * float(where.sum()) / area
        # change of the summed squared error over those pixels, per band pixel, in (grey levels of 255)^2
        delta = (image[where] - truth[where]) ** 2 - (folded[where] - truth[where]) ** 2
        out[key + "_harm"] = float(delta.sum()) * 255.0 ** 2 / area
    return out


def bench_stack(data: Path, name: str, step: int, args: argparse.Namespace, sff, rng) -> dict:
    """Every method on one stack; returns {method: {figure: [per section]}} and extras."""
    stack, orig_z, res = load_stack(data, name, step)
    ks = folded_sections(orig_z, args.per_stack, args.sections == "train")
    damaged = stack.copy()
    truths = {}
    for k in ks:
        fold = simulate(stack[k], rng, args.family)
        damaged[k] = fold.image
        truths[k] = fold
    rows: dict[str, dict[str, list[float]]] = {m: {} for m in METHODS}
    section_tags: list[list[str]] = []
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
                   "mask_and_fill (true band)": mask_and_fill(folded, left, right, band).image}
        if args.reaches:  # the tuning sweep: the finish with the true band at each FINISH_REACH, nothing else
            shipped = fold_repair.FINISH_REACH
            for reach in args.reaches:
                fold_repair.FINISH_REACH = reach
                outputs[f"true mask, reach {reach}"] = repair_fold_section(sff, folded, left, right, band).image
            fold_repair.FINISH_REACH = shipped
        else:
            outputs["true mask, sff alone"] = repair_fold_section(sff, folded, left, right, band, finish=False).image
            outputs["true mask"] = repair_fold_section(sff, folded, left, right, band).image
            if not args.no_fix:
                outputs["fix, own detection"] = fixed[k].astype(np.float32) * scale
            # as a first or last section: one neighbour (the previous one) stands for both, as FoldRepairer does
            outputs["end: mask_and_fill (true band)"] = mask_and_fill(folded, left, left, band).image
            outputs["end: true mask"] = repair_fold_section(sff, folded, left, left, band).image
        kinds = "+".join(f"{f.kind}{f.width_px:.0f}" + "".join("-" + x for x in f.features) for f in fold.folds)
        pulled = fold.pulled_mask if fold.pulled_mask is not None else np.zeros_like(band)
        section_tags.append(tags(fold))
        for method, image in outputs.items():
            for key, value in score(image, truth, folded, left, right, band, pulled).items():
                rows.setdefault(method, {}).setdefault(key, []).append(value)
        if not args.no_fix:
            rows["fix, own detection"].setdefault("found", []).append(float((fixed[k] != damaged[k]).any()))
        if args.verbose:
            print(f"  {name} z={orig_z[k]} {kinds}: " + ", ".join(
                f"{m} {rows[m]['psnr'][-1]:.2f}" for m in outputs), flush=True)
    return {"rows": rows, "extra": extra, "sections": [orig_z[k] for k in ks], "tags": section_tags,
            "truth_dark_pct": float(np.mean([dark_residue(stack[k].astype(np.float32) * scale,
                                                          stack[k - 1].astype(np.float32) * scale,
                                                          stack[k + 1].astype(np.float32) * scale,
                                                          truths[k].band_mask) for k in truths]))}


def print_table(rows: dict, section_tags: list[list[str]]) -> None:
    """One markdown table: every method's figures over all sections, then per tag."""
    print("| sections | method | n | PSNR (dB) | SSIM | band PSNR (dB) | dark residue (%) | seam (grey levels) "
          "| changed outside band (% of band) | harm there | outside band + pull (%) | harm there | found |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for tag in TAGS:
        pick = [i for i, t in enumerate(section_tags) if tag in t]
        if not pick:
            continue
        for method, r in rows.items():
            if not r:
                continue
            m = {key: float(np.nanmean([v[i] for i in pick])) for key, v in r.items()}
            found = f"{m['found']:.2f}" if "found" in m else ""
            print(f"| {tag} | {method} | {len(pick)} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['psnr_band']:.2f} "
                  f"| {m['dark_pct']:.1f} | {m['seam']:.2f} | {m['out_band_pct']:.1f} | {m['out_band_harm']:.1f} "
                  f"| {m['out_pull_pct']:.1f} | {m['out_pull_harm']:.1f} | {found} |")


def main() -> None:
    """Run the benchmark and print one markdown table per stack (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--stacks", nargs="+", default=list(STACKS), choices=list(STACKS))
    parser.add_argument("--per-stack", type=int, default=4, help="folded held-out sections per stack")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fix", action="store_true", help="skip the end-to-end fix run")
    parser.add_argument("--family", choices=("B", *DEV_A), default="B",
                        help="B: the measurement; A, A-thin, A-pull: development sets (family A widened to faint "
                             "bands, thin lines only, or with a wide exponential pull)")
    parser.add_argument("--sections", choices=("held-out", "train"), default="held-out",
                        help="fold held-out sections (the measurement) or training sections (for tuning)")
    parser.add_argument("--reaches", type=int, nargs="+", default=None,
                        help="tuning sweep: only the finish with the true band at each FINISH_REACH (implies --no-fix)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.no_fix = args.no_fix or bool(args.reaches)
    torch.set_num_threads(args.threads)
    sff = load_model("sff")[0]
    rng = np.random.default_rng(args.seed)
    summary = {}
    for name in args.stacks:
        out = bench_stack(args.data, name, STACKS[name], args, sff, rng)
        summary[name] = out
        print(f"\n{name} ({args.sections} z {out['sections']}, family {args.family}, seed {args.seed}); "
              f"clean sections score dark {out['truth_dark_pct']:.1f} %; {out['extra']}")
        print_table(out["rows"], out["tags"])
    if len(summary) > 1:
        pooled_rows = {m: {} for m in METHODS}
        pooled_tags: list[list[str]] = []
        for out in summary.values():
            pooled_tags += out["tags"]
            for m, r in out["rows"].items():
                for key, v in r.items():
                    pooled_rows.setdefault(m, {}).setdefault(key, []).extend(v)
        print(f"\npooled over {', '.join(summary)} (seed {args.seed})")
        print_table(pooled_rows, pooled_tags)
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
