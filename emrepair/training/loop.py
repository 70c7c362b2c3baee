"""The training loop: sample triplets, optimise, validate against linear, keep the best checkpoint."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from emrepair.callbacks import TrainProgressCallback, WarnCallback
from emrepair.choices import ModelKind
from emrepair.engine.notes import resolve_device_noting
from emrepair.errors import OutputError, UsageError
from emrepair.training.checkpointing import Checkpointer, checkpoint_meta
from emrepair.training.optimiser import Optimiser
from emrepair.training.state import History
from emrepair.training.steps import run_steps


@dataclass
class TrainConfig:
    """Everything ``emrepair train`` can be told.

    ``steps`` or ``epochs`` (one epoch = as many crops as cover the training sections' pixels once);
    ``val_every`` in steps (default: once per epoch); ``model_options`` override fields of the model config.
    ``pixel_loss``: "charbonnier" (the papers') or "mse" (optimises PSNR directly).
    ``adversarial``: add Jain et al.'s adversarial term (None = for the gan model only); ``adversarial_options``
    override fields of :class:`~emrepair.training.adversarial.AdversarialConfig`.
    """

    inputs: list[str]
    output: str
    model: str = "flowunet"
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 8
    patch_size: int = 128
    lr: float = 1e-3
    device: str = "auto"
    init: str | None = None
    resume: bool = False
    val_inputs: list[str] = field(default_factory=list)
    val_every: int | None = None
    vgg_weights: str | None = None
    pixel_loss: str = "charbonnier"
    isotropic: bool | None = None
    detect: bool = True
    seed: int = 0
    model_options: dict[str, Any] = field(default_factory=dict)
    adversarial: bool | None = None
    adversarial_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    """What a training run produced."""

    output: str
    state: str
    curves: str
    steps: int
    best: dict[str, Any] | None
    loss: str
    seconds: float


def _check(config: TrainConfig) -> None:
    if not config.inputs:
        raise UsageError("give at least one stack to train on")
    if (config.steps is None) == (config.epochs is None):
        raise UsageError("give exactly one of --steps and --epochs")
    for label, value in (("--steps", config.steps), ("--epochs", config.epochs), ("--batch-size", config.batch_size),
                         ("--patch-size", config.patch_size), ("--val-every", config.val_every)):
        if value is not None and value < 1:
            raise UsageError(f"{label} must be at least 1, got {value}")
    from emrepair.training.losses import PIXEL_LOSSES

    if config.pixel_loss not in PIXEL_LOSSES:
        raise UsageError(f"--pixel-loss must be one of {', '.join(PIXEL_LOSSES)}, got {config.pixel_loss!r}")
    if not config.lr > 0:
        raise UsageError(f"--lr must be positive, got {config.lr}")
    if not Path(config.output).expanduser().resolve().parent.is_dir():
        raise OutputError(f"cannot write {config.output}: its folder does not exist")


def build_model(config: TrainConfig, message: WarnCallback) -> tuple[torch.nn.Module, Any]:
    """The model to train and its config dataclass: fresh, or from --init weights."""
    from emrepair.models import get_spec, list_models, load_model

    if config.init is not None:
        model, _ = load_model(config.init, device="cpu")
        if model.name != config.model:
            message(f"--init {config.init} holds a {model.name!r} model; training that instead of {config.model!r}")
        if not hasattr(model, "config") or not any(p.requires_grad for p in model.parameters()):
            raise UsageError(f"--init {config.init}: model {model.name!r} has nothing to train")
        return model, model.config
    spec = get_spec(config.model)
    if spec.kind == ModelKind.FOLD:
        raise UsageError(f"{config.model} is a fold model: train it with `emrepair train --model {config.model}` "
                         "(docs/models.md); this trainer trains interpolation models")
    if not spec.learned:
        trainable = ", ".join(s.name for s in list_models() if s.learned)
        raise UsageError(f"model {config.model!r} has no weights to train; choose one of {trainable}, gan3d")
    try:
        model_config = spec.config_cls(**config.model_options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid {config.model} settings {config.model_options}: {exc}") from exc
    return spec.cls(model_config), model_config


def choose_loss(config: TrainConfig, device: torch.device, message: WarnCallback) -> tuple[Any, str]:
    """The loss function ``(pred, target, a, b) -> dict`` and its name; pixel-only without local VGG16 weights."""
    from emrepair.training.losses import (
        PIXEL_LOSSES,
        PerceptualStyleLoss,
        VGG16Features,
        find_vgg_weights,
    )

    name = config.pixel_loss
    path = find_vgg_weights(config.vgg_weights)
    if path is None:
        message("VGG16 ImageNet weights not found (pass --vgg-weights PATH or put vgg16-*.pth in the torch hub "
                f"cache); training with the {name} pixel loss only")
        pixel = PIXEL_LOSSES[name]
        return (lambda pred, target, a, b: {"total": pixel(pred, target)}), name
    loss = PerceptualStyleLoss(VGG16Features.from_file(path).to(device), pixel_loss=name)
    return loss, f"{name} + VGG16 feature + style-balance (1e6:1:1, {path.name})"


def build_adversary(config: TrainConfig, model_name: str, device: torch.device) -> Any:
    """The discriminator trainer for an adversarial run (``--adversarial`` auto: the gan model only), else None."""
    from emrepair.training.adversarial import AdversarialConfig, AdversarialTrainer

    if not (config.adversarial if config.adversarial is not None else model_name == "gan"):
        return None
    try:
        adversarial_config = AdversarialConfig(**config.adversarial_options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid adversarial settings {config.adversarial_options}: {exc}") from exc
    return AdversarialTrainer(adversarial_config, device)


def steps_per_epoch(stacks: list[Any], patch_size: int, batch_size: int) -> int:
    """Steps whose crops together cover every training section's pixels once."""
    pixels = sum(len(s.train_z) * s.shape[1] * s.shape[2] for s in stacks)
    return max(1, math.ceil(pixels / patch_size**2 / batch_size))


def train(config: TrainConfig, progress: TrainProgressCallback | None = None,
          message: WarnCallback | None = None) -> TrainResult:
    """Train an interpolation model on triplets drawn from the user's own stacks.

    The checkpoint at ``config.output`` is the best by validation PSNR so far (or the latest when there is no
    validation data); ``<output>.state.pt`` holds the latest weights, optimizer and step for --resume;
    ``<stem>.curves.png`` the loss and validation curves.
    """
    from emrepair.models.registry import require_interpolation
    from emrepair.training.sampling import TripletSampler, validation_triplets
    from emrepair.training.stacks import open_training_stack
    from emrepair.training.validation import pick_validation, validate

    say = message or (lambda text: None)
    started = time.perf_counter()
    _check(config)
    torch.manual_seed(config.seed)
    model, model_config = build_model(config, say)
    require_interpolation(model, f"--init {config.init}" if config.init is not None else f"--model {config.model}")
    multiple = int(model.size_multiple)
    patch = math.ceil(config.patch_size / multiple) * multiple
    if patch != config.patch_size:
        say(f"--patch-size {config.patch_size} is not a multiple of {multiple} ({model.name}); using {patch}")
    device = resolve_device_noting(config.device, say)

    role = "train" if config.val_inputs else "both"
    stacks = [open_training_stack(p, isotropic=config.isotropic, role=role, detect=config.detect)
              for p in config.inputs]
    stacks += [open_training_stack(p, isotropic=config.isotropic, role="val", detect=config.detect)
               for p in config.val_inputs]
    try:
        train_stacks = [s for s in stacks if s.train_z]
        if not train_stacks:
            raise UsageError("no training sections: every input was given with --val")
        val = pick_validation(validation_triplets(stacks))
        if not val:
            say("no held-out sections to validate on; the latest weights are kept")
        per_epoch = steps_per_epoch(train_stacks, patch, config.batch_size)
        total = config.steps if config.steps is not None else config.epochs * per_epoch
        val_every = config.val_every or min(per_epoch, total)

        model.to(device).train()
        optimiser = Optimiser(model, config.lr, device)
        loss_fn, loss_name = choose_loss(config, device, say)
        adversary = build_adversary(config, model.name, device)
        if adversary is not None:
            loss_name = f"{loss_name} + {adversary.config.describe()}"
        checkpointer = Checkpointer(config.output, model, model_config, optimiser, adversary)
        history, step = History(), 0
        if config.resume:
            step, history = checkpointer.resume(device, say)
            say(f"resuming at step {step} of {total}")
        sampler = TripletSampler(stacks, patch, seed=config.seed * 1_000_003 + step)  # fresh crops after a resume

        def loss_at(step: int) -> torch.Tensor:
            a, b, target, t = (torch.from_numpy(x).to(device) for x in sampler.batch(config.batch_size))
            with optimiser.autocast():
                pred = model(a, b, t)
                loss = loss_fn(pred.float(), target, a, b)["total"]
            if adversary is not None:   # D first, then G against the updated D (the paper's order); both fp32
                history.d_losses.append(adversary.discriminator_step(a, b, target, pred))
                adv = (adversary.config.weight * adversary.generator_loss(a, b, pred) if adversary.active(step)
                       else torch.zeros((), device=device))
                loss = loss + adv
                history.adv_losses.append(float(adv.detach()))
            return loss

        settings = {"patch_size": patch, "loss": loss_name}
        step, best = run_steps(
            step=step, total=total, val_every=val_every, history=history, optimiser=optimiser,
            checkpointer=checkpointer, loss_at=loss_at,
            validate=(lambda: validate(model, stacks, val, str(device))) if val else None,
            meta=lambda at, best: checkpoint_meta(stacks, at, best, config, device, settings),
            progress=progress, adversarial=adversary is not None)
    finally:
        for s in stacks:
            s.close()
    return TrainResult(output=str(config.output), state=str(checkpointer.sidecar), curves=str(checkpointer.curves),
                       steps=step, best=best, loss=loss_name, seconds=time.perf_counter() - started)
