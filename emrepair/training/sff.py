"""Training the fold repair model (``sff``) on simulated folds in real sections.

Stage 1 (interpolation) is taken as configured and kept fixed; the unfolding and fusion networks
are trained with three L1 terms on the repair region (weight > 0): the unfolding flow against the
inverse of the simulator's displacement, the unfolded section against the clean one off the band,
and the composed output against the clean section.

Run: ``emrepair train ../shared/data --model sff --minutes 30 -o weights/sff.pt``
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from emrepair.callbacks import TimedProgressCallback
from emrepair.errors import UsageError
from emrepair.models.checkpoint import save_checkpoint
from emrepair.models.sff import SFFConfig, SFFModel
from emrepair.training.fold_data import (
    FoldExample,
    FoldStack,
    load_fold_stacks,
    make_fold_example,
)


@dataclass
class TimedRunConfig:
    """Settings shared by the fold-model training runs.

    Attributes:
        crop: side of the training crops (folds are simulated in the crop).
        batch_size: crops per step.
        lr: Adam learning rate (cosine-decayed to lr / 10 over the run).
        steps: most optimisation steps; minutes: most wall time (whichever ends first).
        seed: random seed for crops, folds and initialisation.
        val_examples: held-out folds evaluated at the end.
    """

    crop: int = 192
    batch_size: int = 6
    lr: float = 1e-3
    steps: int = 100000
    minutes: float = 30.0
    seed: int = 0
    val_examples: int = 48


@dataclass
class FoldTrainConfig(TimedRunConfig):
    """Settings of a training run of sff's stages 2-3 (see :class:`TimedRunConfig`).

    Attributes:
        flow_weight: weight of the flow L1 (pixels) beside the image L1 terms ([0, 1] units).
    """

    flow_weight: float = 0.02


def run_timed(cfg: TimedRunConfig, params: list[torch.nn.Parameter], losses_at: Callable[[], dict[str, torch.Tensor]],
              progress: TimedProgressCallback | None = None) -> tuple[int, dict[str, float], float]:
    """Adam on ``params`` until ``cfg.steps`` or ``cfg.minutes`` run out, the learning rate cosine-decayed over
    the time budget, gradients clipped at 1. ``losses_at()`` draws a batch and returns its losses ("total" is
    minimised). Returns (steps, moving averages of the losses, minutes)."""
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    start, budget, step = time.monotonic(), cfg.minutes * 60.0, 0
    history: dict[str, float] = {}
    while step < cfg.steps and time.monotonic() - start < budget:
        frac = min(1.0, (time.monotonic() - start) / budget)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * frac)))
        losses = losses_at()
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        for k, v in losses.items():
            value = float(v.detach())
            history[k] = 0.98 * history.get(k, value) + 0.02 * value
        if progress is not None and step % 20 == 0:
            progress(step, dict(history))
    return step, history, (time.monotonic() - start) / 60.0


def stack_examples(examples: list[FoldExample], device: torch.device) -> dict[str, torch.Tensor]:
    """Batch a list of examples into (B, 1, H, W) tensors (and (B, 2, H, W) flows)."""
    def batch(name: str) -> torch.Tensor:
        arrays = [np.asarray(getattr(e, name), dtype=np.float32) for e in examples]
        x = torch.from_numpy(np.stack(arrays))
        return (x[:, None] if x.ndim == 3 else x).to(device)
    return {name: batch(name) for name in ("folded", "left", "right", "clean", "band", "inverse")}


def sample_examples(stacks: list[FoldStack], rng: np.random.Generator, count: int, crop: int,
                    held_out: bool) -> list[FoldExample]:
    """``count`` folds in random training (or held-out) sections, stacks drawn uniformly."""
    out = []
    for _ in range(count):
        stack = stacks[int(rng.integers(len(stacks)))]
        zs = stack.val_z if held_out else stack.train_z
        out.append(make_fold_example(stack, int(rng.choice(zs)), rng, crop, flip=not held_out))
    return out


def fold_losses(model: SFFModel, batch: dict[str, torch.Tensor], flow_weight: float) -> dict[str, torch.Tensor]:
    """The training losses on one batch: total, output, unfolded and flow L1 on the repair region."""
    parts = model.parts(batch["folded"], batch["left"], batch["right"], batch["band"])
    region = (parts.weight > 0).float()
    off_band = region * (1.0 - batch["band"])
    def masked_l1(x: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return ((x - y).abs() * m).sum() / (m.sum() * x.shape[1]).clamp_min(1.0)
    output = masked_l1(parts.output, batch["clean"], region)
    unfolded = masked_l1(parts.unfolded, batch["clean"], off_band)
    flow = masked_l1(parts.flow, batch["inverse"], region)
    return {"total": output + unfolded + flow_weight * flow, "output": output, "unfolded": unfolded, "flow": flow}


def validate(model: SFFModel, examples: list[FoldExample], device: torch.device) -> dict[str, float]:
    """Mean region L1 of the model's output and of mask-and-fill on held-out folds."""
    model.eval()
    sums = {"sff_l1": 0.0, "mask_fill_l1": 0.0}
    with torch.inference_mode():
        for i in range(0, len(examples), 8):
            b = stack_examples(examples[i:i + 8], device)
            parts = model.parts(b["folded"], b["left"], b["right"], b["band"])
            region = (parts.weight > 0).float()
            fill = torch.where(b["band"] > 0, 0.5 * (b["left"] + b["right"]), b["folded"])
            n = region.sum().clamp_min(1.0)
            sums["sff_l1"] += float(((parts.output.clamp(0, 1) - b["clean"]).abs() * region).sum() / n)
            sums["mask_fill_l1"] += float(((fill - b["clean"]).abs() * region).sum() / n)
    model.train()
    batches = (len(examples) + 7) // 8
    return {k: v / batches for k, v in sums.items()}


def load_interpolator_weights(model: SFFModel, path: Path) -> str:
    """Load a trained interpolation checkpoint (of the model named by ``model.config.interpolator``)
    into stage 1; returns the checkpoint's sha256 for the run's summary."""
    from emrepair.models import load_model

    trained, meta = load_model(path)
    if trained.name != model.config.interpolator:
        raise UsageError(f"--interpolator-weights {path} holds a {trained.name!r} model, "
                         f"not {model.config.interpolator!r}")
    try:
        model.interpolator.load_state_dict(trained.state_dict(), strict=True)
    except RuntimeError as exc:
        raise UsageError(f"--interpolator-weights {path}: its config differs from the default "
                         f"{trained.name} config that sff builds") from exc
    return str(meta.weights_sha256)


def load_sff_checkpoint(path: Path) -> tuple[SFFModel, dict]:
    """An sff model and its meta from a checkpoint; one saved before stage 0 (contrast correction)
    existed loads with a fresh, identity stage 0.

    Raises:
        InputError: an unreadable file or invalid config; UsageError: a checkpoint of another model, or one
            whose stages do not fit.
    """
    from emrepair.models.checkpoint import read_checkpoint
    from emrepair.models.registry import build_config, get_spec

    blob = read_checkpoint(path)
    if blob["model"] != "sff":
        raise UsageError(f"{path} holds a {blob['model']!r} model, not sff")
    model = SFFModel(build_config(get_spec("sff"), dict(blob["config"]), str(path)))
    missing, unexpected = model.load_state_dict(blob["state_dict"], strict=False)
    if unexpected or any(not k.startswith("contrast.") for k in missing):
        raise UsageError(f"{path}: its weights do not fit sff ({len(missing)} missing, {len(unexpected)} unexpected)")
    return model, dict(blob.get("meta") or {})


def train_sff(data_dir: Path, out_path: Path, config: FoldTrainConfig | None = None,
              model_config: SFFConfig | None = None, device: str = "cpu",
              progress: TimedProgressCallback | None = None, interpolator_weights: Path | None = None,
              init: Path | None = None, names: tuple[str, ...] | None = None) -> dict[str, object]:
    """Train the unfolding and fusion networks of ``sff`` and save a checkpoint at ``out_path``.

    ``interpolator_weights``: a trained checkpoint for a learned stage 1 (kept fixed during training).
    ``init``: continue from this sff checkpoint (its config and all its stages; ``model_config`` and
    ``interpolator_weights`` are then ignored). Stages 0 and 1 stay fixed (stage 0 is trained by
    ``training/contrast.py``). ``names``: the fold stacks of ``data_dir`` to use (None: every one present).
    Returns the run's summary (steps, minutes, final losses, validation L1), also stored in the checkpoint's meta.
    """
    cfg = config or FoldTrainConfig()
    target = torch.device(device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    stacks = load_fold_stacks(data_dir, names)
    earlier: dict = {}
    stage1 = None
    if init is not None:
        model, earlier = load_sff_checkpoint(Path(init))
        stage1 = earlier.get("interpolator")
    else:
        model = SFFModel(model_config or SFFConfig())
        if interpolator_weights is not None:
            stage1 = {"weights": Path(interpolator_weights).name,
                      "sha256": load_interpolator_weights(model, Path(interpolator_weights))}
    model = model.to(target).train()
    for p in [*model.interpolator.parameters(), *model.contrast.parameters()]:
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    val_examples = sample_examples(stacks, np.random.default_rng(cfg.seed + 1), cfg.val_examples, cfg.crop, True)

    def losses_at() -> dict[str, torch.Tensor]:
        batch = stack_examples(sample_examples(stacks, rng, cfg.batch_size, cfg.crop, False), target)
        return fold_losses(model, batch, cfg.flow_weight)

    step, history, minutes = run_timed(cfg, params, losses_at, progress)
    val = validate(model, val_examples, target)
    summary: dict[str, object] = {
        "steps": step, "minutes": round(minutes, 2),
        "train_losses_ema": {k: round(v, 5) for k, v in history.items()},
        "validation": {k: round(v, 5) for k, v in val.items()},
        "train_config": asdict(cfg),
        "interpolator": {"name": model.config.interpolator, **(stage1 or {})},
        "trained_on": [f"{s.spec.name} (z % 5 != 2; {s.spec.licence})" for s in stacks],
    }
    if init is not None:
        summary["init"] = Path(init).name
        summary["earlier_runs"] = [*earlier.get("earlier_runs", []),
                                   {k: earlier.get(k) for k in ("steps", "minutes", "validation")}]
        if "contrast_training" in earlier:
            summary["contrast_training"] = earlier["contrast_training"]
    save_checkpoint(out_path, model.cpu(), model.config, summary)
    return summary
