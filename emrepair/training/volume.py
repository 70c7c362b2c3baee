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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emrepair.callbacks import TrainProgressCallback, WarnCallback
from emrepair.choices import ModelKind
from emrepair.engine.notes import resolve_device_noting
from emrepair.engine.window import WINDOW_CONTEXT
from emrepair.errors import InputError, UsageError
from emrepair.training.checkpointing import Checkpointer, checkpoint_meta
from emrepair.training.loop import (
    TrainConfig,
    TrainResult,
    _check,
    build_model,
    steps_per_epoch,
)
from emrepair.training.optimiser import Optimiser
from emrepair.training.sampling import JITTER_BRIGHTNESS, JITTER_CONTRAST, pad_to
from emrepair.training.stacks import TrainingStack
from emrepair.training.state import History
from emrepair.training.steps import run_steps

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
        raise InputError(f"{stack.path}: {len(good)} good sections are too few to train a volume model and hold "
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
                             "windows from")
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
    from emrepair.engine.window import VolumeTiler
    from emrepair.training.validation import Scores, centre

    was_training = model.training
    tiler = VolumeTiler(model, device, tile_size=crop, batch_size=1)
    scores = Scores()
    try:
        for w in windows:
            stack = stacks[w.stack]
            inputs = np.stack([centre(stack.section(z), crop) for z in w.sections[::w.factor]])
            keep = range(MIDDLE * w.factor + 1, (MIDDLE + 1) * w.factor)
            preds = tiler.upsample(inputs, w.factor, keep)
            a, b = inputs[MIDDLE], inputs[MIDDLE + 1]
            for j, (z, pred) in enumerate(zip(w.kept, preds), start=1):
                truth = centre(stack.section(z), crop)
                scores.add(pred, ((1 - j / w.factor) * a + j / w.factor * b).astype(np.float32), truth)
    finally:
        model.train(was_training)
    return scores.metrics()


def open_volume_stacks(config: TrainConfig, max_factor: int, say: WarnCallback) -> list[TrainingStack]:
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
            raise UsageError("volume models train on isotropic stacks (FIB-SEM: equal voxel size in z, y and x) and none "
                             f"was given for training{'; serial sections skipped: ' if skipped else ''}"
                             f"{', '.join(skipped)} (pass --isotropic to treat a stack as isotropic)")
    except Exception:
        for s in stacks:
            s.close()
        raise
    for name in skipped:
        say(f"skipping {name}: serial sections have no ground truth between sections")
    return stacks


def train_volume(config: TrainConfig, progress: TrainProgressCallback | None = None,
                 message: WarnCallback | None = None) -> TrainResult:
    """Train a kind-"volume" model (gan3d) on windows of isotropic stacks; see the module docstring.

    Writes what ``train`` writes: the checkpoint at ``config.output`` (best by validation PSNR, else the
    latest), ``<output>.state.pt`` for --resume and ``<stem>.curves.png``.
    """
    from emrepair.models import model_kind

    say = message or (lambda text: None)
    started = time.perf_counter()
    _check(config)
    torch.manual_seed(config.seed)
    model, model_config = build_model(config, say)
    if model_kind(model) != ModelKind.VOLUME:
        raise UsageError(f"model {model.name!r} is not a volume model; train it without --model {config.model}")
    factors = [f for f in model.factors if f >= 2]
    if config.vgg_weights is not None:
        say("--vgg-weights is not used by volume models (Charbonnier loss only)")
    device = resolve_device_noting(config.device, say)

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
        optimiser = Optimiser(model, config.lr, device)
        checkpointer = Checkpointer(config.output, model, model_config, optimiser)
        history, step = History(), 0
        if config.resume:
            step, history = checkpointer.resume(device, say)
            say(f"resuming at step {step} of {total}")
        sampler = WindowSampler(stacks, patch, factors, seed=config.seed * 1_000_003 + step)
        loss_name = "charbonnier (synthesized sections)"

        def loss_at(step: int) -> torch.Tensor:
            inputs, target, factor, _ = sampler.batch(config.batch_size)
            inputs, target = torch.from_numpy(inputs).to(device), torch.from_numpy(target).to(device)
            with optimiser.autocast():
                pred = model(inputs, factor)
            return synthesized_loss(pred, target, factor)

        settings = {"patch_size": patch, "window": WINDOW, "factors": sampler.factors, "loss": loss_name}
        step, best = run_steps(
            step=step, total=total, val_every=val_every, history=history, optimiser=optimiser,
            checkpointer=checkpointer, loss_at=loss_at,
            validate=(lambda: validate_volume(model, stacks, val, str(device))) if val else None,
            meta=lambda at, best: checkpoint_meta(stacks, at, best, config, device, settings),
            progress=progress)
    finally:
        for s in stacks:
            s.close()
    return TrainResult(output=str(config.output), state=str(checkpointer.sidecar), curves=str(checkpointer.curves),
                       steps=step, best=best, loss=loss_name, seconds=time.perf_counter() - started)
