"""Before and after pictures of three folds of the independent family B in a held-out ssTEM section, repaired by
``fix`` with its own detection and default settings: a thin line, a wide band along a border and a faint band.

    python benchmarks/fold_gallery.py [--data ../shared/data] [--stack vnc_stack1] [--z 7] [--seed 0]
                                      [--out docs/images/folds_before_after.png]

Each row: the folded section, fix's output and the untouched section, cropped around the band (the same crop),
with the fold's kind and, beside it, whether fix found it and the band's PSNR before and after and of
mask-and-fill with the true band; printed too: the band's mean and standard deviation after fix and in the truth,
and how many pixels fix changed outside the true band and outside the band and the pulled tissue. The seeds are fixed and the pictures are what comes out: no picking.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emrepair.io import open_volume
from emrepair.pipelines.fix import FixOptions, run_fix
from emrepair.simulate.fold_b import FoldBParams, simulate_fold_b

CASES = {
    "thin line": FoldBParams(kind_probs=(1.0, 0.0, 0.0), two_folds_prob=0.0, edge_prob=0.0, rect_prob=0.0),
    "wide band at the border": FoldBParams(kind_probs=(0.0, 1.0, 0.0), two_folds_prob=0.0, edge_prob=1.0,
                                           rect_prob=0.0),
    "faint band": FoldBParams(kind_probs=(0.0, 0.0, 1.0), two_folds_prob=0.0, edge_prob=0.0, rect_prob=0.0),
}
CROP = 384


def crop_around(band: np.ndarray, size: int) -> tuple[slice, slice]:
    """A size x size window centred on the band's middle pixel (clamped to the section)."""
    ys, xs = np.nonzero(band)
    cy, cx = int(np.median(ys)), int(np.median(xs))
    h, w = band.shape
    y0 = min(max(0, cy - size // 2), max(0, h - size))
    x0 = min(max(0, cx - size // 2), max(0, w - size))
    return slice(y0, y0 + size), slice(x0, x0 + size)


def band_psnr(image: np.ndarray, truth: np.ndarray, band: np.ndarray) -> float:
    """PSNR (dB, images in [0, 1]) over the band's pixels only."""
    mse = float(np.mean((image[band].astype(np.float64) - truth[band]) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    """The uint8 tile with a caption bar above it."""
    bar = np.full((28, image.shape[1]), 255, np.uint8)
    cv2.putText(bar, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, 0, 1, cv2.LINE_AA)
    return np.vstack([bar, image])


def main() -> None:
    """Fold, repair and draw each case; print one line per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--stack", default="vnc_stack1")
    parser.add_argument("--z", type=int, default=7, help="a held-out section (z %% 5 == 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/images/folds_before_after.png"))
    args = parser.parse_args()
    with open_volume(str(args.data / f"{args.stack}.h5")) as vol:
        stack = np.stack([vol.read_section(z) for z in range(vol.shape[0])])
        resolution = vol.info.voxel_size or (50.0, 5.0, 5.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, params) in enumerate(CASES.items()):
            fold = simulate_fold_b(stack[args.z], np.random.default_rng(args.seed + i), params)
            folded = stack.copy()
            folded[args.z] = fold.image
            src, out = Path(tmp) / f"in{i}.h5", Path(tmp) / f"out{i}.h5"
            with h5py.File(src, "w") as f:
                f.create_dataset("raw", data=folded, chunks=(1,) + folded.shape[1:])
                f["raw"].attrs["resolution"] = list(resolution)
            result = run_fix(str(src), str(out), FixOptions())
            with open_volume(str(out)) as fixed_vol:
                fixed = fixed_vol.read_section(args.z)
            band = fold.band_mask
            fill = fold.image.astype(np.float32)
            fill[band] = 0.5 * (stack[args.z - 1][band].astype(np.float32) + stack[args.z + 1][band])
            truth = stack[args.z].astype(np.float32) / 255
            scores = [band_psnr(img, truth, band) for img in (fold.image / 255.0, fixed / 255.0, fill / 255.0)]
            found = args.z in result.synthesized
            changed = fixed != fold.image
            pulled = fold.pulled_mask if fold.pulled_mask is not None else np.zeros_like(band)
            print(f"{name:24s} width {fold.folds[0].width_px:5.1f} px  found {found}  band PSNR folded {scores[0]:.2f}"
                  f"  fixed {scores[1]:.2f}  mask-and-fill {scores[2]:.2f} dB  band mean/std fixed "
                  f"{fixed[band].mean():.1f}/{fixed[band].std():.1f} truth {stack[args.z][band].mean():.1f}/"
                  f"{stack[args.z][band].std():.1f}  changed outside the band {(changed & ~band).sum()} px, outside "
                  f"band + pull {(changed & ~band & ~pulled).sum()} px (band {band.sum()} px)", flush=True)
            ys, xs = crop_around(band, CROP)
            caption = f"{name}, {fold.folds[0].width_px:.0f} px: " + ("found" if found else "NOT found")
            tiles = [labelled(fold.image[ys, xs], caption), labelled(fixed[ys, xs], "emrepair fix"),
                     labelled(stack[args.z][ys, xs], "untouched section")]
            rows.append(np.hstack([np.pad(t, ((4, 4), (4, 4)), constant_values=255) for t in tiles]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack(rows))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
