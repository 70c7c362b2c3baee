"""Benchmark of ``upsample-z`` on decimated FIB-SEM stacks (a script, not a test).

Each isotropic FIB-SEM stack of ../shared/data is cropped, decimated in z by each factor (keeping every
factor-th section), run through the upsample-z pipeline exactly as the CLI runs it (``--no-repair``: the stacks have
no defects), and every synthesized section is scored against the section that was dropped. Prints PSNR and SSIM
per position t for each model beside linear and flow, and seconds per synthesized megapixel; writes an xz reslice
(decimated and nearest-neighbour stretched / upsampled by the auto model / truth; neuroproof2 at x4) to
docs/images/upsample_xz.png.

    python benchmarks/bench_upsample.py                      # linear, flow, every learned model with weights
    python benchmarks/bench_upsample.py --random-weights     # also untrained ssan/dan, for timing only
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emrepair.engine.metrics import psnr, ssim  # noqa: E402
from emrepair.io import open_volume  # noqa: E402
from emrepair.io.base import ArrayVolume  # noqa: E402
from emrepair.models import list_models  # noqa: E402
from emrepair.pipelines.model_choice import default_upsample_model  # noqa: E402
from emrepair.pipelines.upsample import UpsampleOptions, upsample_volume  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
STACKS = ("neuroproof_medulla_train1.h5", "neuroproof_medulla_train2.h5", "gala_fib_example.h5")
GALA_NM = 10.0  # the gala stack's voxel size is unknown; ~10 nm isotropic FIB-SEM per its README
PICTURE_STACK = "neuroproof_medulla_train2.h5"  # no shipped weights saw it
PICTURE_DEPTH = 121  # output sections shown in the xz picture


def load_crop(path: Path, depth: int, size: int) -> tuple[np.ndarray, float]:
    """The first ``depth`` sections of a stack, centre-cropped to at most ``size``² pixels, and its z spacing."""
    with h5py.File(path) as f:
        ds = f["raw"]
        z_nm = float(ds.attrs["resolution"][0])
        _, height, width = ds.shape
        y0, x0 = max((height - size) // 2, 0), max((width - size) // 2, 0)
        crop = ds[:depth, y0:y0 + size, x0:x0 + size]
    return crop, (z_nm if math.isfinite(z_nm) else GALA_NM)


def models_to_run(random_weights: bool, only: list[str] | None = None) -> list[tuple[str, bool]]:
    """(name, has trained weights) for linear, flow and the learned interpolation and volume (gan3d) models
    (with weights, or random if asked); ``only`` keeps the named ones."""
    chosen = []
    for spec in list_models("interpolation") + list_models("volume"):
        if only and spec.name not in only:
            continue
        if not spec.learned or spec.has_weights():
            chosen.append((spec.name, True))
        elif random_weights:
            chosen.append((spec.name, False))
    return chosen


def upsample(decimated: np.ndarray, z_nm: float, factor: int, model: str, workdir: Path,
             random_weights: bool) -> tuple[np.ndarray, float]:
    """Run the pipeline on a decimated crop; returns the upsampled volume and the seconds it took."""
    out = workdir / f"up_{Path(model).name}_{factor}.h5"
    options = UpsampleOptions(factor=factor, model=model, repair=False, device="cpu", overwrite=True,
                              allow_random_weights=random_weights)
    started = time.perf_counter()
    upsample_volume(ArrayVolume(decimated, (z_nm * factor, z_nm, z_nm)), str(out), options)
    seconds = time.perf_counter() - started
    with open_volume(str(out)) as vol:
        return vol.read_region(slice(None), slice(None), slice(None)), seconds


def score(up: np.ndarray, truth: np.ndarray, factor: int) -> dict[int, tuple[float, float]]:
    """Mean (PSNR, SSIM) per synthesized position j (t = j / factor) against the dropped sections."""
    by_j: dict[int, list[tuple[float, float]]] = {j: [] for j in range(1, factor)}
    for z in range(up.shape[0]):
        if z % factor:
            a, b = up[z].astype(np.float32) / 255, truth[z].astype(np.float32) / 255
            by_j[z % factor].append((psnr(a, b), ssim(a, b)))
    return {j: (float(np.mean([p for p, _ in v])), float(np.mean([s for _, s in v]))) for j, v in by_j.items()}


def xz_picture(decimated: np.ndarray, up: np.ndarray, truth: np.ndarray, factor: int, label: str,
               path: Path) -> None:
    """Write three xz reslices at the middle y (first PICTURE_DEPTH sections), stacked: decimated (nearest stretched), upsampled, truth."""
    from PIL import Image, ImageDraw

    y = up.shape[1] // 2
    depth = min(up.shape[0], PICTURE_DEPTH)
    nearest = decimated[np.minimum(np.rint(np.arange(depth) / factor).astype(int), decimated.shape[0] - 1)]
    panels = [(f"decimated x{factor} (nearest)", nearest[:depth, y, :]),
              (f"upsampled ({label})", up[:depth, y, :]), ("truth", truth[:depth, y, :])]
    scale, caption = 2, 16
    width = up.shape[2] * scale
    canvas = Image.new("L", (width, len(panels) * (depth * scale + caption)), 255)
    draw = ImageDraw.Draw(canvas)
    for i, (name, image) in enumerate(panels):
        top = i * (depth * scale + caption)
        draw.text((4, top + 2), name, fill=0)
        tile = Image.fromarray(np.ascontiguousarray(image)).resize((width, depth * scale), Image.NEAREST)
        canvas.paste(tile, (0, top + caption))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def main() -> None:
    """Parse arguments, run every stack x factor x model, print the table, write the picture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--factors", type=int, nargs="+", default=[4, 5])
    parser.add_argument("--depth", type=int, default=250, help="sections of each stack used (from z = 0)")
    parser.add_argument("--size", type=int, default=250, help="centre crop side in pixels")
    parser.add_argument("--random-weights", action="store_true", help="also untrained ssan/dan (timing only)")
    parser.add_argument("--models", nargs="+", default=None, help="only these models (default: all with weights)")
    parser.add_argument("--stacks", nargs="+", default=list(STACKS), help="file names inside --data")
    parser.add_argument("--picture", type=Path, default=ROOT / "docs" / "images" / "upsample_xz.png")
    parser.add_argument("--picture-stack", default=PICTURE_STACK,
                        help="the stack pictured (x4); the first one run when it is not among --stacks")
    args = parser.parse_args()
    models = models_to_run(args.random_weights, args.models)
    print(f"models: {', '.join(n + ('' if trained else ' (random weights, timing only)') for n, trained in models)}")
    picture: dict[str, Any] | None = None
    names = [name for name, _ in models]
    auto = default_upsample_model((40.0, 10.0, 10.0), 4)  # what --model auto runs on these stacks at x4
    picture_model = auto if auto in names else "flow"
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.stacks:
            path = args.data / name
            if not path.is_file():
                print(f"{name}: missing, skipped")
                continue
            raw, z_nm = load_crop(path, args.depth, args.size)
            for factor in args.factors:
                usable = (raw.shape[0] - 1) // factor * factor + 1
                truth = raw[:usable]
                decimated = truth[::factor]
                print(f"\n{name} crop {truth.shape}, decimated x{factor}: {decimated.shape[0]} sections at "
                      f"{z_nm * factor:g} nm -> {z_nm:g} nm")
                header = "  ".join(f"t={j}/{factor}".rjust(13) for j in range(1, factor))
                print(f"{'model':<8} {header}  {'mean PSNR/SSIM':>15}  s/MP")
                for model, trained in models:
                    up, seconds = upsample(decimated, z_nm, factor, model, Path(tmp), not trained)
                    assert up.shape == truth.shape and np.array_equal(up[::factor], decimated)
                    mp = (up.shape[0] - decimated.shape[0]) * up.shape[1] * up.shape[2] / 1e6
                    scores = score(up, truth, factor)
                    cells = "  ".join(f"{p:6.2f}/{s:.3f}".rjust(13) for p, s in scores.values())
                    mean_p = np.mean([p for p, _ in scores.values()])
                    mean_s = np.mean([s for _, s in scores.values()])
                    tag = model if trained else model + "*"
                    print(f"{tag:<8} {cells}  {mean_p:7.2f}/{mean_s:.3f}  {seconds / mp:.2f}")
                    pictured = name == args.picture_stack or args.picture_stack not in args.stacks
                    if picture is None and factor == 4 and model == picture_model and pictured:
                        picture = {"decimated": decimated, "up": up, "truth": truth, "factor": factor,
                                   "label": f"{model}, {name.removesuffix('.h5')}"}
    if args.random_weights:
        print("\n* random weights: timing only, the scores mean nothing")
    if picture is not None:
        xz_picture(picture["decimated"], picture["up"], picture["truth"], picture["factor"], picture["label"],
                   args.picture)
        print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()
