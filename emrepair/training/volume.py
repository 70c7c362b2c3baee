"""Training a kind-"volume" model (``gan3d``: ``model(stack, factor)``) for z super-resolution.

Only isotropic stacks (FIB-SEM) have ground truth between the sections a serial-section stack would keep:
a window of ``WINDOW`` sections z, z + f, ..., z + (WINDOW - 1) f is the input and every section from z to
z + (WINDOW - 1) f the target, for a random factor f in 2..max_factor. The loss (Charbonnier) covers the
synthesized sections only; the inputs are passed through by the model.

Held-out sections: the every-5th-section rule of interpolation training leaves no run of training sections
long enough for a window, so a stack given as training data holds out one contiguous slab at its end instead
(``VAL_FRACTION`` of its good sections, at least ``2 * max_factor``); a stack given with --val is held out whole.
Validation scores the middle gap of each held-out window (what ``upsample-z`` keeps of a window) against
linear interpolation along z, through the same ``VolumeTiler`` that inference uses.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emrepair.errors import InputError, UsageError
from emrepair.pipelines.upsample_window import WINDOW_CONTEXT
from emrepair.training.loop import (
    GRAD_CLIP,
    MessageCallback,
    ProgressCallback,
    TrainConfig,
    TrainResult,
    _autocast_dtype,
    _check,
    _set_lr,
    build_model,
    steps_per_epoch,
)
from emrepair.training.sampling import JITTER_BRIGHTNESS, JITTER_CONTRAST, pad_to
from emrepair.training.stacks import TrainingStack
from emrepair.training.state import (
    History,
    curves_path,
    hardware,
    load_state,
    save_state,
    state_path,
    utc_now,
)

WINDOW = 2 * WINDOW_CONTEXT + 2   # input sections per window: what upsample-z feeds for an interior pair
MIDDLE = WINDOW_CONTEXT           # the pair (MIDDLE, MIDDLE + 1) of the window is the one inference keeps
VAL_FRACTION = 0.2                # good sections held out at the end of a training stack
VAL_CROP = 256                    # centre crop side of held-out windows (keeps validation quick on the CPU)
MAX_VAL = 12                      # held-out windows scored, spread over factors and positions


@dataclass(frozen=True)
class Window:
    """Input sections ``z0, z0 + factor, ...`` (``WINDOW`` of them) of stack ``stack``."""

    stack: int
    z0: int
    factor: int

    @property
    def sections(self) -> range:
        """Every section the window spans: its inputs and its targets."""
        return range(self.z0, self.z0 + (WINDOW - 1) * self.factor + 1)

    @property
    def synthesized(self) -> list[int]:
        """Sections between the inputs (the model's new sections)."""
        return [z for z in self.sections if (z - self.z0) % self.factor]

    @property
    def kept(self) -> list[int]:
        """Sections of the middle gap: what upsample-z keeps from a window like this one."""
        start = self.z0 + MIDDLE * self.factor
        return list(range(start + 1, start + self.factor))


def hold_out_slab(stack: TrainingStack, max_factor: int) -> None:
    """Replace a training stack's every-5th held-out sections with one contiguous slab at its end (in place)."""
    good = sorted(set(stack.train_z) | set(stack.val_z))
    n_val = max(math.ceil(VAL_FRACTION * len(good)), 2 * max_factor)
    if len(good) - n_val < (WINDOW - 1) * 2 + 1:
        raise InputError(f"{stack.path}: {len(good)} good sections are too few to train gan3d and hold "
                         f"{n_val} out; give a deeper stack or validate on another with --val")
    stack.train_z, stack.val_z = good[:-n_val], good[-n_val:]


def window_starts(allowed: set[int], depth: int, factor: int) -> list[int]:
    """Every z0 whose window at ``factor`` lies wholly in ``allowed``."""
    span = (WINDOW - 1) * factor
    return [z0 for z0 in range(depth - span) if all(z in allowed for z in range(z0, z0 + span + 1))]


def training_windows(stacks: list[TrainingStack], factors: list[int]) -> dict[int, list[Window]]:
    """Per factor, every window whose inputs and targets are all training sections."""
    out: dict[int, list[Window]] = {}
    for f in factors:
        out[f] = [Window(i, z0, f) for i, s in enumerate(stacks)
                  for z0 in window_starts(set(s.train_z), s.shape[0], f)]
    return out


def validation_windows(stacks: list[TrainingStack], factors: list[int], limit: int = MAX_VAL) -> list[Window]:
    """Held-out windows: every section good, the middle gap wholly held out; at most ``limit``, spread evenly
    over the factors and over positions (deterministic)."""
    per_factor = max(1, limit // max(1, len(factors)))
    chosen: list[Window] = []
    for f in factors:
        found = []
        for i, s in enumerate(stacks):
            held = set(s.val_z)
            for z0 in window_starts(held | set(s.train_z), s.shape[0], f):
                w = Window(i, z0, f)
                if all(z in held for z in w.kept):
                    found.append(w)
        if len(found) > per_factor:
            found = [found[k] for k in np.linspace(0, len(found) - 1, per_factor).round().astype(int)]
        chosen += found
    return chosen


class WindowSampler:
    """Draws augmented training batches of windows: crops, flips, rot90, z-reversal, intensity jitter."""

    def __init__(self, stacks: list[TrainingStack], patch_size: int, factors: list[int], seed: int = 0,
                 augment: bool = True) -> None:
        self.stacks = stacks
        self.patch_size = patch_size
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self.windows = {f: w for f, w in training_windows(stacks, factors).items() if w}
        if not self.windows:
            raise UsageError(f"no run of {(WINDOW - 1) * 2 + 1} consecutive good training sections to draw "
                             "gan3d windows from")
        self.factors = sorted(self.windows)

    def draw(self, factor: int) -> Window:
        """A random training window at ``factor``."""
        options = self.windows[factor]
        return options[int(self.rng.integers(len(options)))]

    def sample(self, window: Window) -> np.ndarray:
        """The (S, P, P) float32 crop of every section ``window`` spans, augmented."""
        stack = self.stacks[window.stack]
        height, width = stack.shape[1:]
        p = self.patch_size
        y = int(self.rng.integers(0, max(0, height - p) + 1))
        x = int(self.rng.integers(0, max(0, width - p) + 1))
        block = np.stack([pad_to(stack.region(z, y, x, p), p) for z in window.sections])
        if not self.augment:
            return block
        rng = self.rng
        if rng.random() < 0.5:
            block = block[:, :, ::-1]
        if rng.random() < 0.5:
            block = block[:, ::-1, :]
        block = np.rot90(block, int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            block = block[::-1]  # the inputs stay every factor-th section: the span is a multiple of factor
        contrast = float(rng.uniform(*JITTER_CONTRAST))
        brightness = float(rng.uniform(-JITTER_BRIGHTNESS, JITTER_BRIGHTNESS))
        return np.clip((block - 0.5) * contrast + 0.5 + brightness, 0.0, 1.0).astype(np.float32)

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, int, list[Window]]:
        """``size`` windows at one random factor f: inputs (B, 1, WINDOW, P, P), targets
        (B, 1, (WINDOW - 1) f + 1, P, P) float32, f, and the windows drawn."""
        factor = self.factors[int(self.rng.integers(len(self.factors)))]
        windows = [self.draw(factor) for _ in range(size)]
        target = np.stack([np.ascontiguousarray(self.sample(w)) for w in windows])[:, None]
        return np.ascontiguousarray(target[:, :, ::factor]), target, factor, windows


def synthesized_loss(pred: torch.Tensor, target: torch.Tensor, factor: int) -> torch.Tensor:
    """Charbonnier over the sections between the inputs of (B, 1, S, H, W) tensors."""
    from emrepair.training.losses import charbonnier

    keep = [i for i in range(pred.shape[2]) if i % factor]
    as_2d = lambda v: v[:, :, keep].transpose(1, 2).reshape(-1, 1, *v.shape[-2:])
    return charbonnier(as_2d(pred.float()), as_2d(target.float()))


def validate_volume(model: torch.nn.Module, stacks: list[TrainingStack], windows: list[Window], device: str,
                    crop: int = VAL_CROP) -> Any:
    """Score ``model`` and linear interpolation along z on the middle gaps of ``windows`` (centre crops);
    restores train mode. Returns a ``ValidationMetrics`` (means over the scored sections)."""
    from emrepair.pipelines.metrics import psnr, ssim
    from emrepair.pipelines.upsample_window import VolumeTiler
    from emrepair.training.validation import ValidationMetrics, centre

    was_training = model.training
    tiler = VolumeTiler(model, device, tile_size=crop, batch_size=1)
    scores: dict[str, list[float]] = {"p": [], "s": [], "lp": [], "ls": []}
    try:
        for w in windows:
            stack = stacks[w.stack]
            inputs = np.stack([centre(stack.section(z), crop) for z in w.sections[::w.factor]])
            keep = range(MIDDLE * w.factor + 1, (MIDDLE + 1) * w.factor)
            preds = tiler.upsample(inputs, w.factor, keep)
            a, b = inputs[MIDDLE], inputs[MIDDLE + 1]
            for j, (z, pred) in enumerate(zip(w.kept, preds), start=1):
                truth = centre(stack.section(z), crop)
                linear = ((1 - j / w.factor) * a + j / w.factor * b).astype(np.float32)
                scores["p"].append(psnr(pred, truth))
                scores["s"].append(ssim(pred, truth))
                scores["lp"].append(psnr(linear, truth))
                scores["ls"].append(ssim(linear, truth))
    finally:
        model.train(was_training)
    mean = {k: float(np.mean(v)) if v else float("nan") for k, v in scores.items()}
    return ValidationMetrics(mean["p"], mean["s"], mean["lp"], mean["ls"], len(scores["p"]))


def open_volume_stacks(config: TrainConfig, max_factor: int, say: MessageCallback) -> list[TrainingStack]:
    """The isotropic stacks to train and validate on; serial-section stacks are skipped with a message.

    Raises:
        UsageError: no isotropic stack was given.
    """
    from emrepair.training.stacks import open_training_stack

    role = "train" if config.val_inputs else "both"
    stacks: list[TrainingStack] = []
    skipped: list[str] = []
    try:
        for path, this_role in [(p, role) for p in config.inputs] + [(p, "val") for p in config.val_inputs]:
            stack = open_training_stack(path, isotropic=config.isotropic, role=this_role, detect=config.detect)
            if not stack.isotropic:
                stack.close()
                size = f"voxel size {tuple(stack.voxel_size)}" if stack.voxel_size else "no voxel size"
                skipped.append(f"{Path(path).name} ({size})")
                continue
            stacks.append(stack)
            if this_role == "both":
                hold_out_slab(stack, max_factor)
        if not any(s.train_z for s in stacks):
            raise UsageError("gan3d trains on isotropic stacks (FIB-SEM: equal voxel size in z, y and x) and none "
                             f"was given for training{'; serial sections skipped: ' if skipped else ''}"
                             f"{', '.join(skipped)} (pass --isotropic to treat a stack as isotropic)")
    except Exception:
        for s in stacks:
            s.close()
        raise
    for name in skipped:
        say(f"skipping {name}: serial sections have no ground truth between sections")
    return stacks


def train_volume(config: TrainConfig, progress: ProgressCallback | None = None,
                 message: MessageCallback | None = None) -> TrainResult:
    """Train a kind-"volume" model (gan3d) on windows of isotropic stacks; see the module docstring.

    Writes what ``train`` writes: the checkpoint at ``config.output`` (best by validation PSNR, else the
    latest), ``<output>.state.pt`` for --resume and ``<stem>.curves.png``.
    """
    from emrepair.engine import resolve_device
    from emrepair.models import model_kind, save_checkpoint
    from emrepair.training.curves import write_curves

    say = message or (lambda text: None)
    started = time.perf_counter()
    _check(config)
    torch.manual_seed(config.seed)
    model, model_config = build_model(config, say)
    if model_kind(model) != "volume":
        raise UsageError(f"model {model.name!r} is not a volume model; train it without --model {config.model}")
    factors = [f for f in model.factors if f >= 2]
    if config.vgg_weights is not None:
        say("--vgg-weights is not used by volume models (Charbonnier loss only)")
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        device = resolve_device(config.device)
    for w in caught:
        say(str(w.message))

    stacks = open_volume_stacks(config, max(factors), say)
    try:
        train_stacks = [s for s in stacks if s.train_z]
        val = validation_windows(stacks, factors)
        if not val:
            say("no held-out windows to validate on; the latest weights are kept")
        patch = config.patch_size
        per_epoch = steps_per_epoch(train_stacks, patch, config.batch_size)
        total = config.steps if config.steps is not None else config.epochs * per_epoch
        val_every = config.val_every or min(per_epoch, total)

        model.to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        autocast_dtype = _autocast_dtype(device)
        scaler = torch.amp.GradScaler("cuda") if autocast_dtype == torch.float16 else None
        history, step = History(), 0
        model_cfg_dict = asdict(model_config)
        sidecar = state_path(config.output)
        if config.resume:
            step, history = _resume(sidecar, model, model_cfg_dict, optimizer, scaler, device)
            say(f"resuming at step {step} of {total}")
        sampler = WindowSampler(stacks, patch, factors, seed=config.seed * 1_000_003 + step)
        loss_name = "charbonnier (synthesized sections)"
        description = {"files": [s.describe() for s in stacks], "patch_size": patch, "window": WINDOW,
                       "factors": sampler.factors, "batch_size": config.batch_size, "lr": config.lr,
                       "loss": loss_name, "seed": config.seed}
        best: dict[str, Any] | None = None
        while step < total:
            _set_lr(optimizer, config.lr, step, total)
            inputs, target, factor, _ = sampler.batch(config.batch_size)
            inputs, target = torch.from_numpy(inputs).to(device), torch.from_numpy(target).to(device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                pred = model(inputs, factor)
            loss = synthesized_loss(pred, target, factor)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            step += 1
            history.loss_steps.append(step)
            history.losses.append(float(loss.detach()))
            info = {"loss": float(np.mean(history.losses[-25:]))}
            if history.val_psnr:
                info.update(val_psnr=history.val_psnr[-1], linear_psnr=history.linear_psnr[-1])
            if step % val_every == 0 or step == total:
                metrics = validate_volume(model, stacks, val, str(device)) if val else None
                improved = metrics is None or history.best_psnr is None or metrics.psnr > history.best_psnr
                if metrics is not None:
                    history.val_steps.append(step)
                    history.val_psnr.append(metrics.psnr)
                    history.val_ssim.append(metrics.ssim)
                    history.linear_psnr.append(metrics.linear_psnr)
                    info.update(val_psnr=metrics.psnr, linear_psnr=metrics.linear_psnr)
                if improved:
                    history.best_psnr = metrics.psnr if metrics is not None else None
                    history.best_step = step
                    best = {"step": step, **(metrics.to_dict() if metrics is not None else {})}
                    save_checkpoint(config.output, model, model_config,
                                    _meta(description, stacks, step, best, config, device, loss_name))
                save_state(sidecar, model_name=model.name, config=model_cfg_dict, step=step, model=model,
                           optimizer=optimizer, scaler_state=scaler.state_dict() if scaler else None,
                           history=history)
                write_curves(curves_path(config.output), history.loss_steps, history.losses, history.val_steps,
                             history.val_psnr, history.linear_psnr)
            if progress is not None:
                progress(step, total, info)
        if best is None and history.best_step is not None:
            best = {"step": history.best_step, "val_psnr": history.best_psnr}
    finally:
        for s in stacks:
            s.close()
    return TrainResult(output=str(config.output), state=str(sidecar), curves=str(curves_path(config.output)),
                       steps=step, best=best, loss=loss_name, seconds=time.perf_counter() - started)


def _resume(sidecar: Path, model: torch.nn.Module, config: dict[str, Any], optimizer: torch.optim.Optimizer,
            scaler: Any, device: torch.device) -> tuple[int, History]:
    """Load the latest weights, optimizer and step from the sidecar; returns (step, history)."""
    state = load_state(sidecar)
    if state.get("model") != model.name or state.get("config") != config:
        raise UsageError(f"--resume: {sidecar} is for a {state.get('model')} model with config {state.get('config')}, "
                         f"not this {model.name} with {config}")
    model.load_state_dict(state["state_dict"])
    model.to(device)
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    known = set(History.__dataclass_fields__)
    return int(state["step"]), History(**{k: v for k, v in state["history"].items() if k in known})


def _meta(description: dict[str, Any], stacks: list[TrainingStack], step: int, metrics: dict[str, Any],
          config: TrainConfig, device: torch.device, loss_name: str) -> dict[str, Any]:
    """Checkpoint provenance: data, steps, validation metrics, settings, date and hardware."""
    return {
        "trained_on": [Path(s.path).name for s in stacks],
        "training_data": description["files"],
        "steps": step,
        "metrics": metrics,
        "config": {**{k: v for k, v in asdict(config).items() if k not in ("resume",)},
                   "patch_size": description["patch_size"], "window": description["window"],
                   "factors": description["factors"], "loss": loss_name},
        "date": utc_now(),
        "hardware": hardware(device),
    }
