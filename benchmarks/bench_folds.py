"""Benchmark of fold repair on simulated folds in held-out real sections of ../shared/data.

Per held-out section of each fold stack (see ``emrepair.training.fold_data``; ssTEM neighbours 1
section away, NeuroProof FIB-SEM decimated to 40 nm), a seeded fold with the default FoldParams
(band 5-50 px, reach up to 80 px, TMI contrast boxes, some curved). Methods: the folded section
untouched, mask-and-fill (band <- mean of the neighbours), whole-section interpolation (linear and
OpenCV flow), and ``sff`` with trained weights when given or present (random weights only with
--random-sff, labelled as such and meant for timing), also with its stage 0 (regional contrast
correction) switched off. PSNR and SSIM over the whole section, PSNR inside the repair region (pixels
within reach + transition of the band), and the share of pixels outside that region that a method
changed (stage 0 rescales regions whose contrast the fold changed; the simulator dims a box in half
of the folds).

    python benchmarks/bench_folds.py [--data ../shared/data] [--weights weights/sff.pt] [--per-stack 4]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from emrepair.engine.fold_repair import mask_and_fill, repair_fold_section
from emrepair.engine.metrics import psnr, ssim
from emrepair.models import SFFModel, load_model
from emrepair.models.flow import FlowModel
from emrepair.models.fold_blend import near_band_weight
from emrepair.simulate import simulate_fold
from emrepair.simulate.fold import FoldParams
from emrepair.training.fold_data import load_fold_stacks


def flow_interpolate(model: FlowModel, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """OpenCV flow interpolation halfway between two (H, W) sections."""
    with torch.no_grad():
        out = model(torch.from_numpy(left)[None, None], torch.from_numpy(right)[None, None], torch.tensor([0.5]))
    return out[0, 0].numpy()


def main() -> None:
    """Run the benchmark and print a markdown table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--weights", type=Path, default=None, help="sff checkpoint (default: registry weights)")
    parser.add_argument("--random-sff", action="store_true", help="also time sff with random weights")
    parser.add_argument("--per-stack", type=int, default=4, help="held-out sections per stack")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deadzone", type=float, default=None, help="override stage 0's deadzone (log gain)")
    parser.add_argument("--no-box", action="store_true",
                        help="folds without the dimmed box: 'far pixels changed' is then stage 0's false-correction rate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    models = {}
    if args.weights is not None:
        models["sff"] = load_model(args.weights)[0]
    else:
        try:
            models["sff"] = load_model("sff")[0]
        except Exception:  # noqa: BLE001 - no trained weights: sff rows are left out
            pass
    if "sff" in models and args.deadzone is not None:
        models["sff"].contrast.config.deadzone = args.deadzone
    if "sff" in models and getattr(models["sff"].contrast, "net", None) is not None:
        no_stage0 = copy.deepcopy(models["sff"])
        no_stage0.contrast.net = None
        models["sff without stage 0"] = no_stage0
    if args.random_sff:
        torch.manual_seed(args.seed)
        models["sff (random weights, timing only)"] = SFFModel().eval()
    flow = FlowModel().eval()
    methods = ["folded", "mask_and_fill", "linear", "flow", *models]
    rows: dict[str, dict[str, list[float]]] = {m: {"psnr": [], "ssim": [], "psnr_region": [], "far_changed": [],
                                                                   "seconds": []}
                                               for m in methods}
    rng = np.random.default_rng(args.seed)
    params = FoldParams(contrast_box_prob=0.0) if args.no_box else FoldParams()
    cases = 0
    for stack in load_fold_stacks(args.data):
        s = stack.spec.step
        zs = np.linspace(0, len(stack.val_z) - 1, min(args.per_stack, len(stack.val_z))).round().astype(int)
        for z in (stack.val_z[i] for i in zs):
            clean = stack.volume[z]
            fold = simulate_fold(clean, rng, params)
            scale = np.float32(1 / 255)
            folded = fold.image.astype(np.float32) * scale
            left, right = stack.volume[z - s].astype(np.float32) * scale, stack.volume[z + s].astype(np.float32) * scale
            truth = clean.astype(np.float32) * scale
            region = near_band_weight(torch.from_numpy(fold.band_mask)[None, None].float(), 80, 16)[0, 0].numpy() > 0
            outputs: dict[str, tuple[np.ndarray, float]] = {}
            outputs["folded"] = (folded, 0.0)
            start = time.perf_counter()
            outputs["mask_and_fill"] = (mask_and_fill(folded, left, right, fold.band_mask).image, time.perf_counter() - start)
            start = time.perf_counter()
            outputs["linear"] = (0.5 * (left + right), time.perf_counter() - start)
            start = time.perf_counter()
            outputs["flow"] = (flow_interpolate(flow, left, right), time.perf_counter() - start)
            for name, model in models.items():
                start = time.perf_counter()
                image = repair_fold_section(model, folded, left, right, fold.band_mask).image
                outputs[name] = (image, time.perf_counter() - start)
            for name, (image, seconds) in outputs.items():
                rows[name]["psnr"].append(psnr(image, truth))
                rows[name]["ssim"].append(ssim(image, truth))
                rows[name]["psnr_region"].append(psnr(image[region][None], truth[region][None]) if region.any() else float("nan"))
                far = ~region
                rows[name]["far_changed"].append(100.0 * float((image[far] != folded[far]).mean()) if far.any() else 0.0)
                rows[name]["seconds"].append(seconds / (truth.size / 1e6))
            cases += 1

    box = "no dimmed boxes" if args.no_box else "a dimmed box in about half"
    print(f"{cases} held-out sections with one simulated fold each (seed {args.seed}; {box})\n")
    print("| method | PSNR (dB) | SSIM | PSNR near the band (dB) | far pixels changed (%) | s/MP |")
    print("|---|---|---|---|---|---|")
    summary = {}
    for name, r in rows.items():
        if not r["psnr"]:
            continue
        summary[name] = {k: float(np.mean(v)) for k, v in r.items()}
        m = summary[name]
        print(f"| {name} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['psnr_region']:.2f} | {m['far_changed']:.1f} "
              f"| {m['seconds']:.3f} |")
    if args.json is not None:
        args.json.write_text(json.dumps({"cases": cases, "seed": args.seed, "methods": summary}, indent=2))


if __name__ == "__main__":
    main()
