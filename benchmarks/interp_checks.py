"""One-off checks behind the "what did not close the gap" figures in docs/training.md, docs/upsample.md and
docs/models.md (a script that prints figures, not a test). Each subcommand reads ../shared/data.

    python benchmarks/interp_checks.py sstem-blur                 # flowunet + blur / + oracle gain on held-out ssTEM
    python benchmarks/interp_checks.py smooth-flow                # flowunet with smoother DIS flow, FIB-SEM at 40 nm
    python benchmarks/interp_checks.py z-upsample [--model PATH]  # x4 per-section scores on neuroproof2, and cubic in z
    python benchmarks/interp_checks.py fold-box --weights PATH    # sff on the same folds with and without the dimmed box
    python benchmarks/interp_checks.py sstem-ensemble             # flowunet averaged over flips/rotations/order, ssTEM
    python benchmarks/interp_checks.py reslice-x4 [--model PATH]  # upsample-z x4 on neuroproof2, reslice flip ensembles
    python benchmarks/interp_checks.py reslice-slabs --model PATH [--model PATH] [--flow-method dis-smooth]
                                      # reslice checkpoints on neuroproof2 x4 in 4 slabs, their average, view weights
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # bench_fix, bench_upsample

from emrepair.engine.metrics import psnr
from emrepair.models import load_model

DATA = ROOT.parent / "shared" / "data"
SSTEM_HELD_OUT = {"isbi2012_train": (2, 7, 12, 17, 22, 27), "vnc_stack1": (2, 7, 12, 17)}


def predict(model: torch.nn.Module, a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """One whole-section prediction at t (sides must suit the model)."""
    with torch.no_grad():
        return model(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None], torch.tensor([t]))[0, 0].numpy()


def raw(data: Path, name: str) -> h5py.Dataset:
    """The raw dataset of a stack of the data folder."""
    return h5py.File(data / f"{name}.h5", "r")["raw"]


def sstem_blur(data: Path) -> None:
    """flowunet on the ten held-out ssTEM sections, its output blurred, and an oracle global gain/offset."""
    model = load_model("flowunet")[0].eval()
    res: dict[str, list[float]] = {}
    for name, zs in SSTEM_HELD_OUT.items():
        vol = raw(data, name)
        for z in zs:
            a, g, b = (vol[z + d].astype(np.float32) / 255 for d in (-1, 0, 1))
            out = predict(model, a, b, 0.5)
            for sigma in (0, 0.5, 1, 1.5, 2):
                res.setdefault(f"flowunet blur {sigma}", []).append(psnr(out if sigma == 0 else cv2.GaussianBlur(out, (0, 0), sigma), g))
            coef = np.linalg.lstsq(np.vstack([out.ravel(), np.ones(out.size)]).T, g.ravel(), rcond=None)[0]
            res.setdefault("flowunet, oracle gain+offset", []).append(psnr((coef[0] * out + coef[1]).astype(np.float32), g))
            res.setdefault("linear", []).append(psnr((a + b) / 2, g))
    for k, v in res.items():
        print(f"{k}: {np.mean(v):.3f} dB")


def smooth_flow(data: Path) -> None:
    """flowunet on neuroproof2 at 40 nm (neighbours 80 nm apart), with DIS as trained and with variational refinement."""
    import emrepair.models.flow as flow_module

    trained = flow_module.estimate_flow

    def smoother(src: np.ndarray, dst: np.ndarray, method: str) -> np.ndarray:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        dis.setVariationalRefinementIterations(20)
        dis.setVariationalRefinementAlpha(40.0)
        return dis.calc(flow_module.to_uint8(src), flow_module.to_uint8(dst), None)

    model = load_model("flowunet")[0].eval()
    vol = raw(data, "neuroproof_medulla_train2")
    for label, estimate in (("DIS as trained", trained), ("DIS + variational refinement", smoother)):
        flow_module.estimate_flow = estimate
        scores = []
        for z in range(12, 238, 10):
            a, g, b = (vol[z + d][:248, :248].astype(np.float32) / 255 for d in (-4, 0, 4))
            scores.append(psnr(predict(model, a, b, 0.5), g))
        print(f"flowunet, {label}: {np.mean(scores):.3f} dB")
    flow_module.estimate_flow = trained


def z_upsample(data: Path, models: list[str]) -> None:
    """x4 on neuroproof2 (248² crop, whole sections): linear, Catmull-Rom through four sections, flow, models."""
    vol = raw(data, "neuroproof_medulla_train2")[:249, :248, :248].astype(np.float32) / 255
    nets = {name: load_model(name)[0].eval() for name in ["flow", *models]}
    res: dict[str, list[float]] = {}
    for z in range(0, 245, 4):
        p0, p1, p2 = vol[max(z - 4, 0)], vol[z], vol[z + 4]
        p3 = vol[z + 8] if z + 8 < len(vol) else p2
        for j in (1, 2, 3):
            t, g = j / 4, vol[z + j]
            res.setdefault("linear", []).append(psnr((1 - t) * p1 + t * p2, g))
            cubic = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t * t
                           + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3)
            res.setdefault("catmull-rom (4 sections)", []).append(psnr(np.clip(cubic, 0, 1).astype(np.float32), g))
            for name, net in nets.items():
                res.setdefault(name, []).append(psnr(predict(net, p1, p2, t), g))
    for k, v in res.items():
        print(f"{k}: {np.mean(v):.3f} dB")


def fold_box(data: Path, weights: Path, seed: int) -> None:
    """bench_folds' folds (seed, 4 per stack) scored with the dimmed box and, from the same random state, without."""
    from emrepair.engine.fold_repair import mask_and_fill, repair_fold_section
    from emrepair.simulate import simulate_fold
    from emrepair.simulate.fold import FoldParams
    from emrepair.training.fold_data import load_fold_stacks

    model = load_model(weights)[0].eval()
    rng = np.random.default_rng(seed)
    res: dict[str, list[float]] = {}
    for stack in load_fold_stacks(data):
        s = stack.spec.step
        picks = np.linspace(0, len(stack.val_z) - 1, min(4, len(stack.val_z))).round().astype(int)
        for z in (stack.val_z[i] for i in picks):
            clean, twin = stack.volume[z], copy.deepcopy(rng)
            scale = np.float32(1 / 255)
            left, right = stack.volume[z - s].astype(np.float32) * scale, stack.volume[z + s].astype(np.float32) * scale
            truth = clean.astype(np.float32) * scale
            for label, fold in (("", simulate_fold(clean, rng)),
                                (" without box", simulate_fold(clean, twin, FoldParams(contrast_box_prob=0.0)))):
                folded = fold.image.astype(np.float32) * scale
                res.setdefault("mask-and-fill" + label, []).append(
                    psnr(mask_and_fill(folded, left, right, fold.band_mask).image, truth))
                res.setdefault("sff" + label, []).append(
                    psnr(repair_fold_section(model, folded, left, right, fold.band_mask).image, truth))
    for k, v in res.items():
        print(f"{k}: {np.mean(v):.2f} dB")


class SelfEnsemble(torch.nn.Module):
    """An interpolation model averaged over (quarter turns, mirror, swapped order with t -> 1 - t) of its inputs."""

    def __init__(self, model: torch.nn.Module, ops: list[tuple[int, int, int]]) -> None:
        super().__init__()
        self.model, self.ops = model, ops
        self.name, self.halo, self.size_multiple = model.name, model.halo, model.size_multiple

    def forward(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        outs = []
        for turns, mirror, swap in self.ops:
            def there(x: torch.Tensor) -> torch.Tensor:
                x = torch.rot90(x, turns, (2, 3))
                return torch.flip(x, (3,)) if mirror else x
            out = self.model(there(b), there(a), 1 - t) if swap else self.model(there(a), there(b), t)
            out = torch.flip(out, (3,)) if mirror else out
            outs.append(torch.rot90(out, -turns, (2, 3)))
        return torch.stack(outs).mean(0)


def patched_load_model(wrap) -> None:
    """Make every ``load_model`` of the pipelines pass its model through ``wrap(name, model)``."""
    import emrepair.models as models_module

    original = models_module.load_model

    def load(name, *args, **kwargs):
        model, meta = original(name, *args, **kwargs)
        return wrap(str(name), model), meta

    models_module.load_model = load


def sstem_ensemble(data: Path) -> None:
    """flowunet through ``evaluate`` (as bench_targets) on the ten held-out ssTEM sections, averaged over 1-16
    transforms of its inputs."""
    from bench_fix import held_out_runs

    from emrepair.pipelines.eval import evaluate

    sets = {"none": [(0, 0, 0)], "swapped order": [(0, 0, 0), (0, 0, 1)],
            "4 (half turn + mirror, x swapped order)": [(0, 0, 0), (0, 0, 1), (2, 1, 0), (2, 1, 1)],
            "8 (every turn and mirror)": [(r, m, 0) for r in range(4) for m in range(2)],
            "16 (x swapped order)": [(r, m, s) for r in range(4) for m in range(2) for s in range(2)]}
    current: dict[str, list] = {}
    patched_load_model(lambda name, model: SelfEnsemble(model, current["ops"]) if name == "flowunet" else model)
    for label, ops in sets.items():
        current["ops"] = ops
        mine, lin = [], []
        for name in SSTEM_HELD_OUT:
            path = data / f"{name}.h5"
            result = evaluate(str(path), ["flowunet"], device="cpu", sections=held_out_runs(path, 1, 1, 10_000))
            mine += [v for vs in result.score("flowunet").psnr_by_t.values() for v in vs]
            lin += [v for vs in result.score("linear").psnr_by_t.values() for v in vs]
        print(f"flowunet, ensemble {label}: {np.mean(mine):.3f} dB (linear {np.mean(lin):.3f}, "
              f"{np.mean(mine) - np.mean(lin):+.3f}; n={len(mine)})", flush=True)


def reslice_x4(data: Path, models: list[str]) -> None:
    """bench_upsample's neuroproof2 x4 case (250² crop) for each model, and reslice averaged over z-reversed and
    over xy-mirrored windows."""
    import tempfile

    from bench_upsample import load_crop, score, upsample

    crop, z_nm = load_crop(data / "neuroproof_medulla_train2.h5", 250, 250)
    truth = crop[:(crop.shape[0] - 1) // 4 * 4 + 1]
    flips: dict[str, list[tuple[bool, bool]]] = {"": [(False, False)]}

    def ensemble(name: str, model: torch.nn.Module) -> torch.nn.Module:
        if not hasattr(model, "fill_grid") or flips[""] == [(False, False)]:
            return model
        single = model.fill_grid

        def fill_grid(known, rows, total):
            outs = []
            for reverse, mirror in flips[""]:
                k, r = (known.flip((-1, -2)) if mirror else known), list(rows)
                if reverse:
                    k, r = k.flip(2), [total - 1 - x for x in reversed(rows)]
                out = single(k, r, total)
                out = out.flip(2) if reverse else out
                outs.append(out.flip((-1, -2)) if mirror else out)
            return torch.stack(outs).mean(0)

        model.fill_grid = fill_grid
        return model

    patched_load_model(ensemble)
    runs = [(m, [(False, False)]) for m in ["flow", *models]]
    runs += [("reslice", [(False, False), (True, False)]), ("reslice", [(False, False), (False, True)])]
    with tempfile.TemporaryDirectory() as tmp:
        for name, ops in runs:
            flips[""] = ops
            up, _ = upsample(truth[::4], z_nm, 4, name, Path(tmp), False)
            mean = np.mean([v[0] for v in score(up, truth, 4).values()])
            label = "" if len(ops) == 1 else " + z-reversed" if ops[1][0] else " + xy-mirrored"
            print(f"{name}{label}: {mean:.3f} dB", flush=True)


def reslice_slabs(data: Path, models: list[str], flow_method: str | None) -> None:
    """Reslice checkpoints (``flow_method`` in place of each one's own, if given) on neuroproof2 kept at every 4th
    section in four 61-section slabs of whole sections (``validate_reslice``'s scoring), the average of their
    outputs, and the first one's xz and yz views weighted other than half and half."""
    from dataclasses import replace

    vol = raw(data, "neuroproof_medulla_train2")[:].astype(np.float32) / 255
    slabs = [vol[a:a + 61] for a in (0, 60, 120, 180)]

    def score(outs: list[np.ndarray]) -> float:
        return float(np.mean([psnr(out[z], s[z]) for out, s in zip(outs, slabs) for z in range(len(s)) if z % 4]))

    preds, views = {}, []
    for name in models:
        model = load_model(name)[0].eval()
        if flow_method is not None:
            model.config = replace(model.config, flow_method=flow_method)
        outs = []
        with torch.no_grad():
            for s in slabs:
                known = torch.from_numpy(np.ascontiguousarray(s[::4]))[None, None]
                outs.append(model(known, 4)[0, 0].numpy())
                if name == models[0]:
                    xz, yz = model.views(model.volume_channels(known, 4))
                    views.append((xz[0, 0].numpy(), yz[0, 0].numpy()))
        preds[name] = outs
        print(f"{name}: {score(outs):.3f} dB", flush=True)
    if len(models) > 1:
        print(f"average of {len(models)}: {score([np.mean(o, 0) for o in zip(*preds.values())]):.3f} dB")
    for w in (0.3, 0.4, 0.5, 0.6, 0.7):
        print(f"{models[0]}, xz view x {w} + yz view x {1 - w:.1f}: "
              f"{score([np.clip(w * xz + (1 - w) * yz, 0, 1) for xz, yz in views]):.3f} dB")


def main() -> None:
    """Parse the subcommand and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=["sstem-blur", "smooth-flow", "z-upsample", "fold-box", "sstem-ensemble",
                                          "reslice-x4", "reslice-slabs"])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", action="append", default=[],
                        help="z-upsample, reslice-x4: extra model names or checkpoints; reslice-slabs: the models")
    parser.add_argument("--weights", type=Path, default=Path("weights/sff.pt"), help="fold-box: sff checkpoint")
    parser.add_argument("--flow-method", default=None, help="reslice-slabs: flow method in place of each model's own")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if args.check == "sstem-blur":
        sstem_blur(args.data)
    elif args.check == "smooth-flow":
        smooth_flow(args.data)
    elif args.check == "z-upsample":
        z_upsample(args.data, ["flowunet", *args.model])
    elif args.check == "sstem-ensemble":
        sstem_ensemble(args.data)
    elif args.check == "reslice-x4":
        reslice_x4(args.data, ["reslice", *args.model])
    elif args.check == "reslice-slabs":
        reslice_slabs(args.data, args.model or ["reslice"], args.flow_method)
    else:
        fold_box(args.data, args.weights, args.seed)


if __name__ == "__main__":
    main()
