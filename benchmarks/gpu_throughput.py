"""Repair throughput per interpolation model, beside the device's FLOP limit (the GPU session's step 3).

    python benchmarks/gpu_throughput.py [--device cuda] [--sizes 1024 4096] [--models flowunet ssan ...]
                                        [--modes fp32 bf16 channels_last compile] [--seconds 6] [--json out.json]

For each model, size and mode the whole engine path (``TiledInterpolator.interpolate``: pad, tile, batch,
blend; DIS flow included for flowunet) is timed on a synthetic section pair at t = 0.5, and reported in Mpx/s
of repaired section. ``flop/px`` is the network's FLOPs per output pixel, counted by
``torch.utils.flop_counter`` on one 256² input (the classical DIS flow of flowunet is not counted); ``limit``
is the device's dense peak over that count (``--peak-tflops``, default the H200's measured 790 bf16 and
about 60 fp32 TFLOP/s), so ``limit`` is what the network alone could reach on that device, and the gap
between the two columns says where time goes. Random weights: speed does not depend on them.
Modes: ``fp32``; ``bf16`` (autocast); ``channels_last`` (bf16 with the model and inputs in NHWC memory
format); ``compile`` (bf16 with ``torch.compile`` of the model; compile time is excluded, one warm-up).
``--dry-run`` measures one small size for a second each, on whatever device is asked, to test the script.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine_tiles import synthetic_pair

from emrepair.engine.config import EngineConfig  # noqa: E402
from emrepair.engine.interpolator import TiledInterpolator  # noqa: E402

MODELS = ("linear", "flowunet", "ssan", "dan", "tsain", "gan")
MODES = ("fp32", "bf16", "channels_last", "compile")
PEAK_TFLOPS = {"fp32": 60.0, "bf16": 790.0}


def flops_per_pixel(model: torch.nn.Module, device: torch.device, size: int = 256) -> float:
    """Network FLOPs per output pixel for one (a, b, t) input of ``size``² (0 for weight-free models)."""
    from torch.utils.flop_counter import FlopCounterMode

    a = torch.rand(1, 1, size, size, device=device)
    b = torch.rand(1, 1, size, size, device=device)
    t = torch.full((1,), 0.5, device=device)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(a, b, t)
    return counter.get_total_flops() / float(size * size)


def prepare(name: str, mode: str, device: str) -> tuple[TiledInterpolator, torch.nn.Module]:
    """An engine for ``name`` set up for ``mode`` (see the module docstring), and its plain model."""
    from emrepair.models import load_model

    model, _meta = load_model(name, device=device, allow_random=True)
    precision = "fp32" if mode == "fp32" or device == "cpu" else "bf16"
    if mode == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    plain = model
    if mode == "compile":
        compiled = torch.compile(model)
        for attr in ("halo", "size_multiple", "name"):  # the engine reads these off the model
            if hasattr(model, attr):
                try:
                    setattr(compiled, attr, getattr(model, attr))
                except AttributeError:
                    pass
        model = compiled
    engine = TiledInterpolator(model, EngineConfig(device=device, precision=precision, batch_size=8))
    return engine, plain


def time_engine(engine: TiledInterpolator, size: int, seconds: float) -> tuple[float, int]:
    """(Mpx/s, repeats) of interpolating one ``size``² section at t = 0.5, after one warm-up."""
    a, b = synthetic_pair(size)
    engine.interpolate(a, b, [0.5])
    sync = torch.cuda.synchronize if engine.device.type == "cuda" else (lambda: None)
    sync()
    repeats, start = 0, time.perf_counter()
    while True:
        engine.interpolate(a, b, [0.5])
        sync()
        repeats += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds or repeats >= 50:
            break
    return size * size * repeats / elapsed / 1e6, repeats


def main(argv: list[str] | None = None) -> None:
    """Print one line per (model, size, mode) and write them as JSON with ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--peak-tflops-bf16", type=float, default=PEAK_TFLOPS["bf16"])
    parser.add_argument("--peak-tflops-fp32", type=float, default=PEAK_TFLOPS["fp32"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.sizes, args.seconds, args.models = [128], 0.5, args.models[:2]
    torch.manual_seed(0)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device={args.device} ({name}) torch={torch.__version__} threads={torch.get_num_threads()}")
    rows = []
    for model_name in args.models:
        for mode in args.modes:
            if args.device == "cpu" and mode != "fp32" and not args.dry_run:
                continue
            try:
                engine, plain = prepare(model_name, mode, args.device)
                fpp = flops_per_pixel(plain, engine.device)
            except Exception as exc:  # a model that cannot be set up for this mode is reported, not fatal
                print(f"{model_name:9s} {mode:13s} setup failed: {type(exc).__name__}: {exc}".splitlines()[0])
                continue
            peak = args.peak_tflops_fp32 if mode == "fp32" else args.peak_tflops_bf16
            limit = peak * 1e12 / fpp / 1e6 if fpp > 0 else float("inf")
            for size in args.sizes:
                try:
                    mpx, reps = time_engine(engine, size, args.seconds)
                except Exception as exc:  # out of memory, compile failure: one line, go on
                    print(f"{model_name:9s} {mode:13s} {size:5d}^2 failed: {type(exc).__name__}".splitlines()[0])
                    if engine.device.type == "cuda":
                        torch.cuda.empty_cache()
                    continue
                rows.append({"model": model_name, "mode": mode, "size": size, "mpx_s": round(mpx, 2),
                             "repeats": reps, "flops_per_px": round(fpp), "limit_mpx_s": round(limit, 1)})
                print(f"{model_name:9s} {mode:13s} {size:5d}^2 {mpx:9.2f} Mpx/s  flop/px {fpp:10.0f}  "
                      f"limit {limit:12.1f} Mpx/s  ({reps} runs)", flush=True)
            del engine, plain
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
