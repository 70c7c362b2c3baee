"""The optimisation shared by the trainers: Adam with mixed precision, the learning-rate schedule, the step loop."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from emrepair.training.state import History

if TYPE_CHECKING:
    from emrepair.training.checkpointing import Checkpointer

ProgressCallback = Callable[[int, int, dict[str, float]], None]
MessageCallback = Callable[[str], None]
GRAD_CLIP = 1.0
MIN_LR_FRACTION = 0.05
RUNNING_MEAN = 25   # steps averaged in the progress line's losses


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA: bf16 where supported, else fp16; none on the CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class Optimiser:
    """Adam on a model's parameters: autocast (with a GradScaler for fp16), grad clipping, cosine learning rate."""

    def __init__(self, model: torch.nn.Module, lr: float, device: torch.device) -> None:
        self.model = model
        self.base_lr = lr
        self.device = device
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.autocast_dtype = autocast_dtype(device)
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_dtype == torch.float16 else None

    def autocast(self) -> AbstractContextManager[Any]:
        """The forward pass's mixed-precision context (a no-op on the CPU)."""
        dtype = self.autocast_dtype
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def schedule(self, step: int, total: int) -> None:
        """Cosine decay from the base rate to 5 % of it over the run (a function of the step, so resuming is exact)."""
        fraction = MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * step / max(total, 1)))
        for group in self.optimizer.param_groups:
            group["lr"] = self.base_lr * fraction

    def step(self, loss: torch.Tensor) -> None:
        """Backward ``loss`` (scaled for fp16), clip the gradient norm to ``GRAD_CLIP`` and update the weights."""
        optimizer, scaler = self.optimizer, self.scaler
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()


def progress_info(history: History, adversarial: bool) -> dict[str, float]:
    """What the progress callback gets after a step: running-mean losses and the latest validation PSNRs."""
    info = {"loss": float(np.mean(history.losses[-RUNNING_MEAN:]))}
    if adversarial:
        info.update(d_loss=float(np.mean(history.d_losses[-RUNNING_MEAN:])),
                    adv=float(np.mean(history.adv_losses[-RUNNING_MEAN:])))
    if history.val_psnr:
        info.update(val_psnr=history.val_psnr[-1], linear_psnr=history.linear_psnr[-1])
    return info


def run_steps(*, step: int, total: int, val_every: int, history: History, optimiser: Optimiser,
              checkpointer: Checkpointer, loss_at: Callable[[int], torch.Tensor], validate: Callable[[], Any] | None,
              meta: Callable[[int, dict[str, Any]], dict[str, Any]], progress: ProgressCallback | None,
              adversarial: bool = False) -> tuple[int, dict[str, Any] | None]:
    """Optimise from ``step`` to ``total``: ``loss_at(step)`` gives each batch's loss; every ``val_every`` steps and
    at the end, ``validate()`` (None: no held-out data) and the checkpointer's bookkeeping.

    Returns the final step and the best checkpoint's entry (from the history when this run saved none).
    """
    best: dict[str, Any] | None = None
    while step < total:
        optimiser.schedule(step, total)
        loss = loss_at(step)
        optimiser.step(loss)
        step += 1
        history.loss_steps.append(step)
        history.losses.append(float(loss.detach()))
        info = progress_info(history, adversarial)
        if step % val_every == 0 or step == total:
            metrics = validate() if validate is not None else None
            best = checkpointer.after_validation(step, history, metrics, info, meta) or best
        if progress is not None:
            progress(step, total, info)
    if best is None and history.best_step is not None:
        best = {"step": history.best_step, "val_psnr": history.best_psnr}
    return step, best
