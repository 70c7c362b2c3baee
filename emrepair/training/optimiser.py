"""The optimiser shared by the trainers: Adam with mixed precision, grad clipping and a cosine learning rate."""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from typing import Any

import torch

GRAD_CLIP = 1.0
MIN_LR_FRACTION = 0.05


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
