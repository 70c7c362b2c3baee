"""What classical estimators reach on the two open quality targets: checks that bound what a model must beat.

    python benchmarks/linear_ceilings.py sstem           # ssTEM held-out sections: per-band optimal linear filters
    python benchmarks/linear_ceilings.py flow-settings   # FIB-SEM 40 nm, x4: DIS settings for the flow warps
    python benchmarks/linear_ceilings.py sstem-spectrum  # ssTEM held-out sections: flowunet's error per wavelength
    python benchmarks/linear_ceilings.py serial [--model PATH ...]  # every serial-section stack: flow's Wiener ceiling

``sstem``: on the held-out sections of isbi2012 and vnc_stack1 (z % 5 == 2, as ``emrepair train`` holds out),
the best linear filter of each prediction, fitted per radial frequency band (48 bands, a Wiener filter) on the
stack's other sections and applied to the held-out ones: of the neighbours' average; of the averages of the
neighbours 1 and 2 sections away (two inputs per band); of the flow interpolation (DIS, t = 1/2; also with the
other flow methods); and of the flow interpolation filtered per octave band with weights that depend on how well
the two warped neighbours agree locally (6 levels of local correlation). Whole sections, PSNR dB on [0, 1].

``sstem-spectrum``: on the same held-out sections, the power of the truth and of flowunet's error (whole sections,
shipped weights) in octave bands of wavelength, and the fraction of the truth's power flowunet explains in each.

``serial``: the same per-band filter of the flow interpolation on every serial-section stack of the data folder
(isbi2012, vnc_stack1, the two CDeep3M SBEM training stacks and CREMI: held-out z % 5 == 2, fitted on the stack's
other sections; CDeep3M's own validation stack ``sbem_cdeep3m_val_v2``: every interior section, with the filter
fitted on ``sbem_cdeep3m_train_v2``, the same processing), beside linear, flow and each ``--model`` (name or
checkpoint, whole sections in one pass), per stack and pooled over all held-out sections.

``flow-settings``: the flow baseline (both neighbours warped to t and cross-faded) on neuroproof2 kept at every
4th section, t = 1/4, 1/2, 3/4 between sections 10, 22, ..., 226 and 4 further, with several DIS settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emrepair.engine.metrics import psnr  # noqa: E402
from emrepair.models.flow import (  # noqa: E402
    FLOW_METHODS,
    SMOOTH_ALPHA,
    SMOOTH_ITERATIONS,
    backward_warp,
    flow_warps,
    to_uint8,
)

DATA = ROOT.parent / "shared" / "data"
SSTEM = ("isbi2012_train", "vnc_stack1")
SERIAL = ("isbi2012_train", "vnc_stack1", "sbem_cdeep3m_train_v1", "sbem_cdeep3m_train_v2", "cremi_train_crop")
SERIAL_VAL = {"sbem_cdeep3m_val_v2": "sbem_cdeep3m_train_v2"}   # a validation stack: its filter's fitting stack
BANDS = 48
OCTAVES = (0, 1 / 128, 1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 0.75)
AGREEMENT_LEVELS = 6


def load(data: Path, name: str) -> np.ndarray:
    """A whole stack as float32 in [0, 1]."""
    with h5py.File(data / f"{name}.h5", "r") as f:
        return f["raw"][:].astype(np.float32) / 255


def radius(shape: tuple[int, int]) -> np.ndarray:
    """Radial frequency (cycles per pixel) of each FFT coefficient of an image of ``shape``."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    return np.sqrt(fy ** 2 + fx ** 2)


def fit_apply(inputs: dict[int, list[np.ndarray]], truth: np.ndarray, held_out: list[int]) -> float:
    """Per-band least-squares weights of the FFTs of ``inputs[z]`` (one list of images per target z) fitted on the
    targets not in ``held_out``; mean PSNR of the filtered prediction on ``held_out``."""
    shape = truth.shape[1:]
    band = np.minimum((radius(shape) / 0.5 * BANDS).astype(int), BANDS - 1).ravel()
    k = len(next(iter(inputs.values())))
    gram, rhs = np.zeros((BANDS, k, k)), np.zeros((BANDS, k))
    spectra = {z: [np.fft.fft2(x).ravel() for x in xs] for z, xs in inputs.items()}
    for z, xs in spectra.items():
        if z in held_out:
            continue
        target = np.fft.fft2(truth[z]).ravel()
        for i in range(k):
            for j in range(k):
                gram[:, i, j] += np.bincount(band, np.real(xs[i] * np.conj(xs[j])), BANDS)
            rhs[:, i] += np.bincount(band, np.real(xs[i] * np.conj(target)), BANDS)
    weights = np.stack([np.linalg.lstsq(gram[b] + 1e-9 * np.eye(k), rhs[b], rcond=None)[0] for b in range(BANDS)])
    scores = []
    for z in held_out:
        filtered = sum(weights[band, i] * spectra[z][i] for i in range(k)).reshape(shape)
        scores.append(psnr(np.clip(np.real(np.fft.ifft2(filtered)), 0, 1).astype(np.float32), truth[z]))
    return float(np.mean(scores))


def agreement_filtered(warps: dict[int, tuple[np.ndarray, np.ndarray]], truth: np.ndarray,
                       held_out: list[int]) -> float:
    """The flow interpolation split into octave bands, each weighted by a least-squares weight per level of the
    local correlation (31 px box) of the two high-passed warps; fitted off ``held_out``, mean PSNR on it."""
    shape = truth.shape[1:]
    r = radius(shape)
    masks = [(r >= lo) & (r < hi) for lo, hi in zip(OCTAVES[:-1], OCTAVES[1:])]
    features = {}
    for z, (from_a, from_b) in warps.items():
        spectrum = np.fft.fft2(0.5 * (from_a + from_b))
        bands = np.stack([np.real(np.fft.ifft2(spectrum * m)) for m in masks]).reshape(len(masks), -1)
        high_a = from_a - cv2.GaussianBlur(from_a, (0, 0), 8)
        high_b = from_b - cv2.GaussianBlur(from_b, (0, 0), 8)
        box = (31, 31)
        corr = cv2.blur(high_a * high_b, box) / np.sqrt(cv2.blur(high_a ** 2, box) * cv2.blur(high_b ** 2, box) + 1e-8)
        features[z] = (bands, corr.ravel())
    pooled = np.concatenate([c for z, (_, c) in features.items() if z not in held_out])
    cuts = np.quantile(pooled, np.linspace(0, 1, AGREEMENT_LEVELS + 1)[1:-1])

    def design(z: int) -> np.ndarray:
        bands, corr = features[z]
        level = np.digitize(corr, cuts)
        out = np.zeros((bands.shape[1], len(masks) * AGREEMENT_LEVELS), np.float32)
        for lv in range(AGREEMENT_LEVELS):
            sel = level == lv
            out[sel, lv * len(masks):(lv + 1) * len(masks)] = bands[:, sel].T
        return out

    size = len(masks) * AGREEMENT_LEVELS
    gram, rhs = np.zeros((size, size)), np.zeros(size)
    for z in features:
        if z not in held_out:
            x = design(z)
            gram += x.T @ x
            rhs += x.T @ truth[z].ravel()
    weights = np.linalg.lstsq(gram + 1e-6 * np.eye(size), rhs, rcond=None)[0]
    return float(np.mean([psnr(np.clip(design(z) @ weights, 0, 1).reshape(shape).astype(np.float32), truth[z])
                          for z in held_out]))


def sstem(data: Path) -> None:
    """Print the per-band optimal linear filters on the held-out ssTEM sections (see the module docstring)."""
    for name in SSTEM:
        vol = load(data, name)
        depth = len(vol)
        held = [z for z in range(2, depth - 2) if z % 5 == 2]
        inner = range(2, depth - 2)
        warps = {z: flow_warps(vol[z - 1], vol[z + 1], 0.5) for z in inner}
        rows = {
            "linear (average)": float(np.mean([psnr(0.5 * (vol[z - 1] + vol[z + 1]), vol[z]) for z in held])),
            "linear, best filter per band": fit_apply({z: [0.5 * (vol[z - 1] + vol[z + 1])] for z in inner}, vol, held),
            "neighbours 1 and 2 away, best filters": fit_apply(
                {z: [0.5 * (vol[z - 1] + vol[z + 1]), 0.5 * (vol[z - 2] + vol[z + 2])] for z in inner}, vol, held),
            "flow": float(np.mean([psnr(0.5 * (warps[z][0] + warps[z][1]), vol[z]) for z in held])),
            "flow, best filter per band": fit_apply({z: [0.5 * (a + b)] for z, (a, b) in warps.items()}, vol, held),
            "flow, per octave and local agreement": agreement_filtered(warps, vol, held),
        }
        for method in (m for m in FLOW_METHODS if m != "dis"):  # dis: the rows above
            other = {z: flow_warps(vol[z - 1], vol[z + 1], 0.5, method) for z in inner}
            rows[f"flow ({method}), best filter per band"] = fit_apply(
                {z: [0.5 * (a + b)] for z, (a, b) in other.items()}, vol, held)
        for label, value in rows.items():
            print(f"{name}: {label}: {value:.3f} dB (n={len(held)})", flush=True)


def sstem_spectrum(data: Path) -> None:
    """Print, per stack and octave band of wavelength, the truth's power, flowunet's error power and the fraction
    explained, summed over the held-out ssTEM sections (see the module docstring)."""
    import torch

    from emrepair.models import load_model

    model = load_model("flowunet")[0].eval()
    for name in SSTEM:
        vol = load(data, name)
        r = radius(vol.shape[1:])
        edges = [e for e in OCTAVES if e < 0.5] + [1.0]
        masks = [(r >= lo) & (r < hi) for lo, hi in zip(edges[:-1], edges[1:])]
        truth_power, error_power = np.zeros(len(masks)), np.zeros(len(masks))
        for z in (z for z in range(1, len(vol) - 1) if z % 5 == 2):
            with torch.no_grad():
                pred = model(torch.from_numpy(vol[z - 1])[None, None], torch.from_numpy(vol[z + 1])[None, None],
                             torch.tensor([0.5]))[0, 0].numpy()
            truth, error = np.abs(np.fft.fft2(vol[z])) ** 2, np.abs(np.fft.fft2(vol[z] - pred)) ** 2
            truth_power += [truth[m].sum() for m in masks]
            error_power += [error[m].sum() for m in masks]
        for lo, hi, t, e in zip(edges[:-1], edges[1:], truth_power, error_power):
            longest = "inf" if lo == 0 else f"{1 / lo:g}"
            print(f"{name}: wavelengths {1 / min(hi, 0.5):g}-{longest} px: error / truth power {e / t:.3f}, "
                  f"explained {1 - e / t:+.1%}; share of the error {e / error_power.sum():.1%}", flush=True)


def band_weights(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per-band least-squares weight (one input) mapping each (prediction, truth) pair's prediction to its truth."""
    shape = pairs[0][1].shape
    band = np.minimum((radius(shape) / 0.5 * BANDS).astype(int), BANDS - 1).ravel()
    gram, rhs = np.zeros(BANDS), np.zeros(BANDS)
    for pred, truth in pairs:
        x, y = np.fft.fft2(pred).ravel(), np.fft.fft2(truth).ravel()
        gram += np.bincount(band, np.abs(x) ** 2, BANDS)
        rhs += np.bincount(band, np.real(x * np.conj(y)), BANDS)
    return rhs / (gram + 1e-9)


def apply_band_weights(weights: np.ndarray, image: np.ndarray) -> np.ndarray:
    """``image`` filtered with one weight per radial band (from :func:`band_weights`), clipped to [0, 1]."""
    band = np.minimum((radius(image.shape) / 0.5 * BANDS).astype(int), BANDS - 1)
    return np.clip(np.real(np.fft.ifft2(np.fft.fft2(image) * weights[band])), 0, 1).astype(np.float32)


def serial(data: Path, models: list[str]) -> None:
    """Print linear, flow, flow's per-band Wiener filter and each model on every serial-section stack's held-out
    sections, per stack and pooled (see the module docstring)."""
    import torch

    from emrepair.models import load_model

    nets = {name: load_model(name, device="cpu")[0].eval() for name in models}
    flows = {}

    def flow_of(name: str, vol: np.ndarray, z: int) -> np.ndarray:
        if (name, z) not in flows:
            a, b = flow_warps(vol[z - 1], vol[z + 1], 0.5)
            flows[name, z] = 0.5 * (a + b)
        return flows[name, z]

    pooled: dict[str, list[float]] = {}
    for name in SERIAL + tuple(SERIAL_VAL):
        if not (data / f"{name}.h5").is_file():
            continue
        vol = load(data, name)
        if name in SERIAL_VAL:
            fit_name = SERIAL_VAL[name]
            fit_vol = load(data, fit_name)
            fit_z = [z for z in range(1, len(fit_vol) - 1) if z % 5 != 2]
            held = list(range(1, len(vol) - 1))
        else:
            fit_name, fit_vol = name, vol
            fit_z = [z for z in range(1, len(vol) - 1) if z % 5 != 2]
            held = [z for z in range(1, len(vol) - 1) if z % 5 == 2]
        weights = band_weights([(flow_of(fit_name, fit_vol, z), fit_vol[z]) for z in fit_z])
        rows: dict[str, list[float]] = {
            "linear": [psnr(0.5 * (vol[z - 1] + vol[z + 1]), vol[z]) for z in held],
            "flow": [psnr(flow_of(name, vol, z), vol[z]) for z in held],
            "flow, best filter per band": [psnr(apply_band_weights(weights, flow_of(name, vol, z)), vol[z])
                                           for z in held],
        }
        for label, net in nets.items():
            scores = []
            for z in held:
                with torch.no_grad():
                    pred = net(torch.from_numpy(vol[z - 1])[None, None], torch.from_numpy(vol[z + 1])[None, None],
                               torch.tensor([0.5]))[0, 0].numpy()
                scores.append(psnr(np.clip(pred, 0, 1).astype(np.float32), vol[z]))
            rows[label] = scores
        for label, values in rows.items():
            pooled.setdefault(label, []).extend(values)
            print(f"{name}: {label}: {np.mean(values):.3f} dB (n={len(values)})", flush=True)
    for label, values in pooled.items():
        print(f"pooled: {label}: {np.mean(values):.3f} dB (n={len(values)})", flush=True)


def dis(**settings: float) -> cv2.DISOpticalFlow:
    """DIS PRESET_MEDIUM with the named setters applied (``PatchSize=16`` calls ``setPatchSize(16)``)."""
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    for key, value in settings.items():
        getattr(flow, "set" + key)(value)
    return flow


def flow_settings(data: Path) -> None:
    """Print the x4 flow baseline on neuroproof2 for several DIS settings (see the module docstring)."""
    vol = load(data, "neuroproof_medulla_train2")
    settings = {
        "PRESET_MEDIUM (the flow baseline's 'dis')": {},
        "patch 16, stride 4": {"PatchSize": 16, "PatchStride": 4},
        "variational refinement 20 iterations, alpha 40": {"VariationalRefinementIterations": 20,
                                                           "VariationalRefinementAlpha": 40.0},
        f"variational refinement {SMOOTH_ITERATIONS} iterations, alpha {SMOOTH_ALPHA:g} ('dis-smooth')": {
            "VariationalRefinementIterations": SMOOTH_ITERATIONS, "VariationalRefinementAlpha": SMOOTH_ALPHA},
        "variational refinement 20 iterations, alpha 320": {"VariationalRefinementIterations": 20,
                                                            "VariationalRefinementAlpha": 320.0},
    }
    lows = range(10, 230, 12)
    linear = [psnr((1 - j / 4) * vol[k] + j / 4 * vol[k + 4], vol[k + j]) for k in lows for j in (1, 2, 3)]
    print(f"linear: {np.mean(linear):.3f} dB (n={len(linear)})")
    for label, kw in settings.items():
        scores = []
        for k in lows:
            a, b = vol[k], vol[k + 4]
            flow_ab = dis(**kw).calc(to_uint8(a), to_uint8(b), None)
            flow_ba = dis(**kw).calc(to_uint8(b), to_uint8(a), None)
            for j in (1, 2, 3):
                t = j / 4
                out = (1 - t) * backward_warp(a, t * flow_ba) + t * backward_warp(b, (1 - t) * flow_ab)
                scores.append(psnr(out, vol[k + j]))
        print(f"flow, {label}: {np.mean(scores):.3f} dB", flush=True)


def torch_threads(threads: int) -> None:
    """Limit torch's intra-op threads (the model passes of ``serial``)."""
    import torch

    torch.set_num_threads(threads)


def main() -> None:
    """Parse the subcommand and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=["sstem", "sstem-spectrum", "flow-settings", "serial"])
    parser.add_argument("--model", action="append", default=[], help="serial: a model name or checkpoint to score")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    if not args.data.is_dir():
        sys.exit(f"{args.data}: no data folder (give --data)")
    if args.check == "sstem":
        sstem(args.data)
    elif args.check == "serial":
        torch_threads(args.threads)
        serial(args.data, args.model)
    elif args.check == "sstem-spectrum":
        sstem_spectrum(args.data)
    else:
        flow_settings(args.data)


if __name__ == "__main__":
    main()
