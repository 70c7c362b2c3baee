"""The adversarial term of Jain et al. (arXiv 1707.00067, section 3.3) for training an interpolator.

A :class:`PairDiscriminator` learns to tell real (neighbour, section) pairs from (neighbour, prediction)
pairs, for both neighbours a and b; the generator is pushed to fool it with the non-saturating loss
``BCE(D(neighbour, pred), real)``, added to the pixel (or perceptual) loss with a small weight after a
pixel-only warm-up. Ours, beside the paper: one discriminator step per generator step (the paper steps the
generator twice), one-sided label smoothing (real = 0.9) and the discriminator in fp32 outside autocast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from emrepair.models.discriminator import DiscriminatorConfig, PairDiscriminator


@dataclass
class AdversarialConfig:
    """Settings of the adversarial term.

    Attributes:
        weight: factor of the generator's adversarial loss in the total (the Charbonnier loss is ~0.05).
        lr: Adam learning rate of the discriminator (constant).
        warmup: generator steps with the pixel loss only; the discriminator trains during them.
        real_label: target for real pairs in the discriminator loss (one-sided label smoothing; 1 = none).
        discriminator: PairDiscriminator settings.
    """

    weight: float = 1e-3
    lr: float = 1e-4
    warmup: int = 200
    real_label: float = 0.9
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        if isinstance(self.discriminator, dict):
            self.discriminator = DiscriminatorConfig(**self.discriminator)
        if self.weight < 0 or not self.lr > 0 or self.warmup < 0 or not 0 < self.real_label <= 1:
            raise ValueError("weight and warmup must be >= 0, lr > 0 and real_label in (0, 1]")

    def describe(self) -> str:
        """The term as it appears in a checkpoint's loss name."""
        return f"{self.weight:g}·adversarial (Jain et al. pair discriminator, after {self.warmup} pixel-only steps)"


class AdversarialTrainer:
    """Owns the discriminator and its optimizer; gives discriminator steps and the generator's adversarial loss."""

    def __init__(self, config: AdversarialConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config or AdversarialConfig()
        self.discriminator = PairDiscriminator(self.config.discriminator).to(device).train()
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr, betas=(0.5, 0.999))

    def active(self, step: int) -> bool:
        """Whether the generator's adversarial term is used at ``step`` (0-based, before the update)."""
        return step >= self.config.warmup and self.config.weight > 0

    def _logits(self, a: torch.Tensor, b: torch.Tensor, section: torch.Tensor) -> torch.Tensor:
        """D on (a, section) and (b, section) in one fp32 batch: (2B, 1) logits."""
        section = section.float()
        with torch.autocast(section.device.type, enabled=False):
            return self.discriminator(torch.cat([a.float(), b.float()]), torch.cat([section, section]))

    def discriminator_step(self, a: torch.Tensor, b: torch.Tensor, target: torch.Tensor,
                           pred: torch.Tensor) -> float:
        """One Adam step on real (neighbour, target) vs fake (neighbour, pred) pairs; returns the D loss."""
        self.discriminator.requires_grad_(True)
        real = self._logits(a, b, target)
        fake = self._logits(a, b, pred.detach())
        loss = (F.binary_cross_entropy_with_logits(real, torch.full_like(real, self.config.real_label))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def generator_loss(self, a: torch.Tensor, b: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Non-saturating ``BCE(D(neighbour, pred), 1)`` over both neighbours; gradients reach ``pred`` only."""
        self.discriminator.requires_grad_(False)   # the generator's backward must not touch D's weights
        fake = self._logits(a, b, pred)
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))

    def state_dict(self) -> dict[str, Any]:
        """Discriminator weights, optimizer and settings (plain tensors and numbers, ``weights_only``-loadable)."""
        return {"config": asdict(self.config),
                "discriminator": {k: v.detach().cpu() for k, v in self.discriminator.state_dict().items()},
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (the settings of this trainer are kept)."""
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
