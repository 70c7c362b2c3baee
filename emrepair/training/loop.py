"""The training loop: sample triplets, optimise, validate against linear, keep the best checkpoint."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from emrepair.errors import OutputError, UsageError
from emrepair.training.state import History, curves_path, hardware, load_state, save_state, state_path, utc_now

ProgressCallback = Callable[[int, int, dict[str, float]], None]
MessageCallback = Callable[[str], None]
GRAD_CLIP = 1.0
MIN_LR_FRACTION = 0.05


@dataclass
class TrainConfig:
    """Everything ``emrepair train`` can be told.

    ``steps`` or ``epochs`` (one epoch = as many crops as cover the training sections' pixels once);
    ``val_every`` in steps (default: once per epoch); ``model_options`` override fields of the model config.
    ``adversarial``: add Jain et al.'s adversarial term (None = for the gan model only); ``adversarial_options``
    override fields of :class:`~emrepair.training.adversarial.AdversarialConfig`.
    """

    inputs: list[str]
    output: str
    model: str = "ssan"
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
    if not config.lr > 0:
        raise UsageError(f"--lr must be positive, got {config.lr}")
    if not Path(config.output).expanduser().resolve().parent.is_dir():
        raise OutputError(f"cannot write {config.output}: its folder does not exist")


def build_model(config: TrainConfig, message: MessageCallback) -> tuple[torch.nn.Module, Any]:
    """The model to train and its config dataclass: fresh, or from --init weights."""
    from emrepair.models import get_spec, load_model

    if config.init is not None:
        model, meta = load_model(config.init, device="cpu")
        if model.name != config.model:
            message(f"--init {config.init} holds a {model.name!r} model; training that instead of {config.model!r}")
        if not hasattr(model, "config") or not any(p.requires_grad for p in model.parameters()):
            raise UsageError(f"--init {config.init}: model {model.name!r} has nothing to train")
        return model, model.config
    spec = get_spec(config.model)
    if not spec.learned:
        raise UsageError(f"model {config.model!r} has no weights to train; choose one of ssan, dan")
    try:
        model_config = spec.config_cls(**config.model_options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid {config.model} settings {config.model_options}: {exc}") from exc
    return spec.cls(model_config), model_config


def choose_loss(config: TrainConfig, device: torch.device, message: MessageCallback) -> tuple[Any, str]:
    """The loss function ``(pred, target, a, b) -> dict`` and its name; pixel-only without local VGG16 weights."""
    from emrepair.training.losses import PerceptualStyleLoss, VGG16Features, charbonnier, find_vgg_weights

    path = find_vgg_weights(config.vgg_weights)
    if path is None:
        message("VGG16 ImageNet weights not found (pass --vgg-weights PATH or put vgg16-*.pth in the torch hub "
                "cache); training with the Charbonnier pixel loss only")
        return (lambda pred, target, a, b: {"total": charbonnier(pred, target)}), "charbonnier"
    loss = PerceptualStyleLoss(VGG16Features.from_file(path).to(device))
    return loss, f"charbonnier + VGG16 feature + style-balance (1e6:1:1, {path.name})"


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


def train(config: TrainConfig, progress: ProgressCallback | None = None,
          message: MessageCallback | None = None) -> TrainResult:
    """Train an interpolation model on triplets drawn from the user's own stacks.

    The checkpoint at ``config.output`` is the best by validation PSNR so far (or the latest when there is no
    validation data); ``<output>.state.pt`` holds the latest weights, optimizer and step for --resume;
    ``<stem>.curves.png`` the loss and validation curves.
    """
    from emrepair.engine import resolve_device
    from emrepair.models import save_checkpoint
    from emrepair.training.curves import write_curves
    from emrepair.training.sampling import TripletSampler, validation_triplets
    from emrepair.training.stacks import open_training_stack
    from emrepair.training.validation import pick_validation, validate

    say = message or (lambda text: None)
    started = time.perf_counter()
    _check(config)
    torch.manual_seed(config.seed)
    model, model_config = build_model(config, say)
    multiple = int(model.size_multiple)
    patch = math.ceil(config.patch_size / multiple) * multiple
    if patch != config.patch_size:
        say(f"--patch-size {config.patch_size} is not a multiple of {multiple} ({model.name}); using {patch}")
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        device = resolve_device(config.device)
    for w in caught:
        say(str(w.message))

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
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        autocast_dtype = _autocast_dtype(device)
        scaler = torch.amp.GradScaler("cuda") if autocast_dtype == torch.float16 else None
        loss_fn, loss_name = choose_loss(config, device, say)
        adversary = build_adversary(config, model.name, device)
        if adversary is not None:
            loss_name = f"{loss_name} + {adversary.config.describe()}"
        history, step = History(), 0
        model_cfg_dict = asdict(model_config)
        sidecar = state_path(config.output)
        if config.resume:
            step, history = _resume(sidecar, model, model_cfg_dict, optimizer, scaler, device, adversary, say)
            say(f"resuming at step {step} of {total}")
        sampler = TripletSampler(stacks, patch, seed=config.seed * 1_000_003 + step)  # fresh crops after a resume
        description = {"files": [s.describe() for s in stacks], "patch_size": patch,
                       "batch_size": config.batch_size, "lr": config.lr, "loss": loss_name, "seed": config.seed}
        best: dict[str, Any] | None = None
        while step < total:
            _set_lr(optimizer, config.lr, step, total)
            a, b, target, t = (torch.from_numpy(x).to(device) for x in sampler.batch(config.batch_size))
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                pred = model(a, b, t)
                loss = loss_fn(pred.float(), target, a, b)["total"]
            if adversary is not None:   # D first, then G against the updated D (the paper's order); both fp32
                history.d_losses.append(adversary.discriminator_step(a, b, target, pred))
                adv = (adversary.config.weight * adversary.generator_loss(a, b, pred) if adversary.active(step)
                       else torch.zeros((), device=device))
                loss = loss + adv
                history.adv_losses.append(float(adv.detach()))
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
            if adversary is not None:
                info.update(d_loss=float(np.mean(history.d_losses[-25:])), adv=float(np.mean(history.adv_losses[-25:])))
            if history.val_psnr:
                info.update(val_psnr=history.val_psnr[-1], linear_psnr=history.linear_psnr[-1])
            if step % val_every == 0 or step == total:
                metrics = validate(model, stacks, val, str(device)) if val else None
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
                    meta = _meta(description, stacks, step, best, config, device, loss_name)
                    save_checkpoint(config.output, model, model_config, meta)
                save_state(sidecar, model_name=model.name, config=model_cfg_dict, step=step, model=model,
                           optimizer=optimizer, scaler_state=scaler.state_dict() if scaler else None,
                           history=history, adversarial=adversary.state_dict() if adversary else None)
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


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA: bf16 where supported, else fp16; none on the CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _set_lr(optimizer: torch.optim.Optimizer, base: float, step: int, total: int) -> None:
    """Cosine decay from ``base`` to 5 % of it over the run (a function of the step, so resuming is exact)."""
    fraction = MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * step / max(total, 1)))
    for group in optimizer.param_groups:
        group["lr"] = base * fraction


def _resume(sidecar: Path, model: torch.nn.Module, config: dict[str, Any], optimizer: torch.optim.Optimizer,
            scaler: Any, device: torch.device, adversary: Any, say: MessageCallback) -> tuple[int, History]:
    """Load the latest weights, optimizer, discriminator and step from the sidecar; returns (step, history)."""
    state = load_state(sidecar)
    if state.get("model") != model.name or state.get("config") != config:
        raise UsageError(f"--resume: {sidecar} is for a {state.get('model')} model with config {state.get('config')}, "
                         f"not this {model.name} with {config}")
    model.load_state_dict(state["state_dict"])
    model.to(device)
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if adversary is not None:
        if state.get("adversarial"):
            adversary.load_state_dict(state["adversarial"])
        else:
            say(f"--resume: {sidecar} holds no discriminator; the adversarial term starts with a fresh one")
    return int(state["step"]), History(**state["history"])


def _meta(description: dict[str, Any], stacks: list[Any], step: int, metrics: dict[str, Any], config: TrainConfig,
          device: torch.device, loss_name: str) -> dict[str, Any]:
    """Checkpoint provenance: data, steps, validation metrics, settings, date and hardware."""
    return {
        "trained_on": [Path(s.path).name for s in stacks],
        "training_data": description["files"],
        "steps": step,
        "metrics": metrics,
        "config": {**{k: v for k, v in asdict(config).items() if k not in ("resume",)},
                   "patch_size": description["patch_size"], "loss": loss_name},
        "date": utc_now(),
        "hardware": hardware(device),
    }
