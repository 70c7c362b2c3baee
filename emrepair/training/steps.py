"""The step loop shared by the trainers: schedule, optimise, validate and checkpoint, report progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from emrepair.callbacks import TrainProgressCallback
from emrepair.training.checkpointing import Checkpointer
from emrepair.training.optimiser import Optimiser
from emrepair.training.state import History

RUNNING_MEAN = 25   # steps averaged in the progress line's losses


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
              meta: Callable[[int, dict[str, Any]], dict[str, Any]], progress: TrainProgressCallback | None,
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
