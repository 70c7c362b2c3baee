"""Training stage 0 of ``sff``, the regional contrast correction, on simulated folds in real sections.

The other stages of a trained sff checkpoint are loaded and left as they are; only the contrast
network learns, on large crops (contrast changes span up to 200 pixels) with the mean squared error
of the corrected section against the clean one off the band. A checkpoint saved before stage 0
existed loads with a fresh (identity) stage 0.

Run: ``emrepair train ../shared/data --model sff --stage contrast --init weights/sff.pt -o weights/sff.pt --minutes 20``
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from emrepair.callbacks import TimedProgressCallback
from emrepair.models.checkpoint import save_checkpoint
from emrepair.models.regional_gain import apply_gain
from emrepair.models.sff import SFFModel
from emrepair.training.fold_data import FoldStack, load_fold_stacks, make_fold_example
from emrepair.training.sff import (
    TimedRunConfig,
    load_sff_checkpoint,
    run_timed,
    stack_examples,
)


@dataclass
class ContrastTrainConfig(TimedRunConfig):
    """Settings of a contrast training run (see :class:`TimedRunConfig`): larger crops (smaller stacks use
    their largest multiple of the network's grid), all crops of a batch from one stack, ``val_examples``
    held-out folds per stack."""

    crop: int = 384
    batch_size: int = 8
    minutes: float = 20.0
    val_examples: int = 16


def crop_for(stack: FoldStack, largest: int, multiple: int) -> int:
    """The crop side for a stack: ``largest`` or the stack's shorter side, down to a multiple."""
    side = min(largest, *stack.volume.shape[1:])
    return side - side % multiple


def sample_batch(stacks: list[FoldStack], rng: np.random.Generator, count: int, largest: int, multiple: int,
                 held_out: bool) -> list:
    """``count`` folds from one stack drawn uniformly (training sections with flips, or held-out ones)."""
    stack = stacks[int(rng.integers(len(stacks)))]
    crop = crop_for(stack, largest, multiple)
    zs = stack.val_z if held_out else stack.train_z
    return [make_fold_example(stack, int(rng.choice(zs)), rng, crop, flip=not held_out) for _ in range(count)]


def contrast_loss(model: SFFModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss of the corrected section, loss of the folded one): mean squared error off the band."""
    log_gain = model.section_gain(batch["folded"], batch["left"], batch["right"], batch["band"])
    corrected = apply_gain(batch["folded"], log_gain)
    off = 1.0 - batch["band"]
    n = off.sum().clamp_min(1.0)
    return (((corrected - batch["clean"]) ** 2) * off).sum() / n, \
        (((batch["folded"] - batch["clean"]) ** 2) * off).sum() / n


def validate_contrast(model: SFFModel, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Off-band PSNR (dB, pooled) of the folded and of the corrected sections on held-out folds."""
    model.eval()
    err_c = err_f = 0.0
    with torch.inference_mode():
        for b in batches:
            corrected, folded = contrast_loss(model, b)
            err_c, err_f = err_c + float(corrected), err_f + float(folded)
    model.train()
    k = max(1, len(batches))
    return {"folded_psnr": float(-10 * np.log10(err_f / k)), "corrected_psnr": float(-10 * np.log10(err_c / k))}


def train_contrast(data_dir: Path, init: Path, out_path: Path, config: ContrastTrainConfig | None = None,
                   device: str = "cpu", progress: TimedProgressCallback | None = None,
                   names: tuple[str, ...] | None = None) -> dict[str, object]:
    """Train stage 0 of the sff checkpoint ``init`` and save the whole model at ``out_path``.

    ``names``: the fold stacks of ``data_dir`` to use (None: every one present).

    Returns the run's summary, also added to the checkpoint's meta under ``contrast_training``.
    """
    cfg = config or ContrastTrainConfig()
    target = torch.device(device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    stacks = load_fold_stacks(data_dir, names)
    model, meta = load_sff_checkpoint(Path(init))
    model = model.to(target).train()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("contrast."))
    multiple = model.contrast.multiple
    val_rng = np.random.default_rng(cfg.seed + 1)
    val = [stack_examples(sample_batch([s], val_rng, cfg.val_examples, cfg.crop, multiple, True), target)
           for s in stacks]

    def losses_at() -> dict[str, torch.Tensor]:
        batch = stack_examples(sample_batch(stacks, rng, cfg.batch_size, cfg.crop, multiple, False), target)
        loss, base = contrast_loss(model, batch)
        return {"total": loss, "folded_mse": base}

    step, _, minutes = run_timed(cfg, list(model.contrast.parameters()), losses_at, progress)
    summary = {
        "steps": step, "minutes": round(minutes, 2),
        "validation": {k: round(v, 3) for k, v in validate_contrast(model, val).items()},
        "train_config": asdict(cfg),
        "trained_on": [f"{s.spec.name} (z % 5 != 2; {s.spec.licence})" for s in stacks],
    }
    earlier = meta.get("contrast_training")
    if earlier:
        summary["earlier_runs"] = [*earlier.pop("earlier_runs", []), earlier]
    meta["contrast_training"] = summary
    meta.pop("weights_sha256", None)
    save_checkpoint(out_path, model.cpu(), model.config, meta)
    return summary
