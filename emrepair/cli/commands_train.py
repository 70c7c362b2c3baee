"""``emrepair eval`` and ``emrepair train``: plain functions the app registers with ``app.command(...)``.

Heavy modules (torch, h5py, the pipelines) are imported inside the functions so ``--help`` stays instant.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Optional

import typer

from emrepair.cli.errors import handle_errors

DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]


@handle_errors
def eval_command(
    path: Annotated[str, typer.Argument(metavar="PATH", help="Stack with good sections to drop and repair (never modified).")],
    model: Annotated[Optional[list[str]], typer.Option("--model", help="Model name, checkpoint path, or auto (what fix --model auto picks for this stack); repeat for several. linear and flow are always added.")] = None,
    gap: Annotated[int, typer.Option("--gap", min=1, help="Drop runs of K consecutive sections, predicted at t = j/(K+1).")] = 1,
    decimate: Annotated[int, typer.Option("--decimate", min=1, help="Isotropic stacks: neighbours D sections away (10 nm FIB-SEM with 4 -> 40 nm).")] = 1,
    sections: Annotated[Optional[str], typer.Option("--sections", help="First section of each run to drop, e.g. 5,9-11 (default: all good interior ones).")] = None,
    max_sections: Annotated[Optional[int], typer.Option("--max-sections", min=1, help="Evaluate at most N runs, drawn reproducibly.")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset or array path inside an HDF5/Zarr container.")] = None,
    tile_size: Annotated[Optional[int], typer.Option("--tile-size", min=16, help="Tile edge in pixels (default: fits the device).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Tiles per network pass.")] = 4,
    device: DeviceOpt = "auto",
    no_detect: Annotated[bool, typer.Option("--no-detect", help="Do not run the detector to skip defective sections.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed for --max-sections.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Drop good sections, repair them from their neighbours with each model, and report PSNR, SSIM and speed."""
    from emrepair.cli.console import echo_json, progress_bar, warn
    from emrepair.cli.options import check_device
    from emrepair.cli.train_checks import warn_trained_overlap
    from emrepair.distributed.plan import parse_sections
    from emrepair.pipelines.eval import evaluate

    check_device(device)
    with progress_bar("eval", enabled=not no_progress) as progress:
        result = evaluate(path, list(model or []), gap=gap, decimate=decimate,
                          sections=parse_sections(sections) if sections is not None else None,
                          max_sections=max_sections, device=device, tile_size=tile_size, batch_size=batch_size,
                          dataset=dataset, detect=not no_detect, seed=seed, progress=progress)
    warn_trained_overlap(path, list(model or []), result, warn)
    if as_json:
        echo_json(json.dumps(result.to_dict(), indent=2))
    else:
        render_eval(result)


def render_eval(result: Any) -> None:
    """Print the models x metrics table of an EvalResult on stdout."""
    from rich.table import Table

    from emrepair.cli.console import result as show

    rows = result.table_rows()
    per_t = [k for k in rows[0] if k.startswith("psnr@")] if rows else []
    spacing = f", decimated x{result.decimate}" if result.decimate > 1 else ""
    table = Table(title=f"{result.input}: {len(result.cases)} run(s) of {result.gap} dropped section(s){spacing}")
    for col in ("model", "PSNR dB", "Δ vs linear", "SSIM", *[k.replace("psnr@", "PSNR t=") for k in per_t],
                "s / MP", "note"):
        table.add_column(col, justify="left" if col in ("model", "note") else "right", no_wrap=col == "model")
    for row in rows:
        spm = row["s_per_mp"]
        table.add_row(row["model"], _num(row["psnr"], 2), f"{row['dpsnr']:+.2f}", _num(row["ssim"], 4),
                      *[_num(row[k], 2) for k in per_t], "-" if spm is None else f"{spm:.3f}", row["note"])
    show(table)
    show(f"device {result.device}; {result.seconds:.1f} s"
         + (f"; skipped defective sections {result.excluded}" if result.excluded else ""))


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "-"


def _parse_model_options(items: list[str]) -> dict[str, Any]:
    """``["widths=8,16", "flow=false", ...]`` -> ``{"widths": (8, 16), "flow": False}`` (see :func:`_parse_value`)."""
    from emrepair.errors import UsageError

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects FIELD=VALUE, got {item!r}")
        options[key.strip()] = tuple(_parse_value(v) for v in value.split(",")) if "," in value else _parse_value(value)
    return options


def _parse_value(value: str) -> Any:
    """An int where possible, else a float, else true/false as a bool, else the string."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.strip().lower(), value)


@handle_errors
def train_command(
    inputs: Annotated[list[str], typer.Argument(metavar="STACK", help="Stacks to learn from (their good sections).")],
    output: Annotated[str, typer.Option("-o", "--output", help="Checkpoint to write (best by validation PSNR).")],
    model: Annotated[str, typer.Option("--model", help="Architecture to train: flowunet (the default model of fix), ssan, dan, tsain, gan, gan3d / reslice (z super-resolution, isotropic stacks only), or sff (fold repair, on folds simulated in its fold stacks: give their folder).")] = "flowunet",
    stage: Annotated[str | None, typer.Option("--stage", help="sff: unfold (stages 2-3, the default) or contrast (stage 0, on top of --init or the shipped sff); reslice: windows (the default, 3-D windows), planes (the plane trainer the shipped weights came from) or fusion (xy fusion on top of --init's views, --set fuse_widths=...).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Optimiser steps in total (default 1000 unless --epochs; sff and reslice planes/fusion: until --minutes).")] = None,
    minutes: Annotated[float | None, typer.Option("--minutes", min=0, help="sff, reslice planes/fusion: wall-time budget (default 30; 20 for sff's contrast stage).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Epochs (one covers the training pixels once).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="Crops per step (default 8; sff, reslice planes/fusion: their own).")] = None,
    patch_size: Annotated[int | None, typer.Option("--patch-size", min=16, help="Crop side; rounded up to the model's size multiple (default 128; sff, reslice planes/fusion: their own).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Adam learning rate, cosine-decayed (default 0.001; reslice planes/fusion: 0.0005).")] = None,
    interpolator_weights: Annotated[str | None, typer.Option("--interpolator-weights", help="sff: trained checkpoint of a learned stage 1 (with --set interpolator=NAME).")] = None,
    device: DeviceOpt = "auto",
    init: Annotated[Optional[str], typer.Option("--init", help="Fine-tune from these weights (model name or checkpoint).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from <output>.state.pt.")] = False,
    val: Annotated[Optional[list[str]], typer.Option("--val", help="Stack(s) to validate on (default: every 5th section held out).")] = None,
    val_every: Annotated[Optional[int], typer.Option("--val-every", min=1, help="Validate every N steps (default: each epoch).")] = None,
    vgg_weights: Annotated[Optional[str], typer.Option("--vgg-weights", help="VGG16 ImageNet state_dict for perceptual/style losses.")] = None,
    pixel_loss: Annotated[str, typer.Option("--pixel-loss", help="Pixel loss: charbonnier (the papers') or mse (best PSNR on noisy sections).")] = "charbonnier",
    isotropic: Annotated[Optional[bool], typer.Option("--isotropic/--anisotropic", help="Force decimated (FIB-SEM) triplets on or off (default: from the voxel size).")] = None,
    set_options: Annotated[Optional[list[str]], typer.Option("--set", help="Model config field, e.g. --set widths=8,16,32 (comma lists are tuples); sff, reslice planes/fusion: also fields of the run's config, e.g. --set factors=2,3,4.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    no_detect: Annotated[bool, typer.Option("--no-detect", help="Do not run the detector to leave out defective sections.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing -o checkpoint (and its curves and resume state).")] = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Train a repair model on your own stacks (self-supervised: drop good sections, learn to predict them)."""
    from emrepair.api import train as train_model
    from emrepair.cli.console import note, warn
    from emrepair.cli.console import result as show
    from emrepair.cli.options import check_device, check_output_free
    from emrepair.cli.train_checks import warn_not_better_than_linear
    from emrepair.training.trainers import TimedResult, stage_of

    model_options = _parse_model_options(list(set_options or []))  # usage errors first
    stage_of(model, stage)
    check_device(device)
    if not resume:
        check_output_free(output, overwrite)
    settings = {"steps": steps, "epochs": epochs, "batch_size": batch_size, "patch_size": patch_size, "lr": lr,
                "device": device, "init": init, "resume": resume, "val_inputs": list(val or []),
                "val_every": val_every, "vgg_weights": vgg_weights, "pixel_loss": pixel_loss, "isotropic": isotropic,
                "detect": not no_detect, "seed": seed, "model_options": model_options}

    def timed_progress(step: int, losses: dict[str, float]) -> None:
        if not no_progress:
            note(f"step {step} " + " ".join(f"{k} {v:.5f}" for k, v in losses.items()))

    with _train_progress(enabled=not no_progress) as progress:
        result = train_model(list(inputs), output, model=model, stage=stage, minutes=minutes,
                             interpolator_weights=interpolator_weights, progress=progress,
                             timed_progress=timed_progress, warn=warn, **settings)
    if isinstance(result, TimedResult):
        summary = result.summary
        show(f"wrote {result.output} after {summary.get('steps', summary.get('fusion', {}).get('steps'))} steps; "
             f"validation {json.dumps(summary.get('validation'))}")
        return
    best = result.best or {}
    line = f"wrote {result.output} after {result.steps} steps ({result.seconds:.0f} s; loss {result.loss})"
    if "val_psnr" in best and "linear_psnr" in best:
        line += (f"; best at step {best['step']}: validation PSNR {best['val_psnr']:.2f} dB "
                 f"(linear {best['linear_psnr']:.2f}), SSIM {best['val_ssim']:.4f} (linear {best['linear_ssim']:.4f})")
    show(line)
    show(f"curves {result.curves}; resume state {result.state}")
    from emrepair.models.licence import checkpoint_terms

    show(f"weights licence: {checkpoint_terms(result.output) or 'unknown'}")
    warn_not_better_than_linear(best, warn)


def _train_progress(enabled: bool) -> Any:
    """A context manager yielding ``progress(step, total, info)``: a Rich bar with loss and PSNR on a terminal,
    plain lines (every 5 % or 30 s, with the loss and validation PSNR) otherwise."""
    from contextlib import contextmanager

    from emrepair.cli.console import progress_bar

    def describe(info: dict[str, float]) -> str:
        text = f"loss {info['loss']:.4f}" if "loss" in info else ""
        if "val_psnr" in info and "linear_psnr" in info:
            text += f", val {info['val_psnr']:.2f} dB (linear {info['linear_psnr']:.2f})"
        return text

    @contextmanager
    def manager() -> Any:
        from emrepair.cli.console import err_console, log_only, settings
        from emrepair.cli.progress import PlainProgress

        if not enabled or settings.quiet or not err_console.is_terminal:
            with progress_bar("train", enabled=enabled) as plain:
                yield lambda step, total, info: plain(step, total, describe(info))
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(TextColumn("train", style="bold"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[info]}", markup=False), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=err_console) as bar:
            task = bar.add_task("train", total=None, info="")
            logged = PlainProgress("train", log_only) if settings.log else None  # --log-file gets plain lines

            def update(step: int, total: int, info: dict[str, float]) -> None:
                bar.update(task, completed=step, total=total, info=describe(info))
                if logged is not None:
                    logged(step, total, describe(info))

            yield update

    return manager()
