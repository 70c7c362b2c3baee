"""What a training run writes as it goes (best checkpoint, resume sidecar, curves), and reading it back for --resume."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from emrepair.callbacks import WarnCallback
from emrepair.errors import UsageError
from emrepair.training.optimiser import Optimiser
from emrepair.training.state import (
    History,
    curves_path,
    hardware,
    load_state,
    save_state,
    state_path,
    utc_now,
)


class Checkpointer:
    """Keeps ``output`` the best checkpoint by validation PSNR (the latest without validation data), beside it the
    ``.state.pt`` sidecar (weights, optimizer, scaler, discriminator, step, history) and the curves PNG."""

    def __init__(self, output: str, model: torch.nn.Module, model_config: Any, optimiser: Optimiser,
                 adversary: Any = None) -> None:
        self.output = output
        self.model = model
        self.model_config = model_config
        self.config_dict = asdict(model_config)
        self.optimiser = optimiser
        self.adversary = adversary
        self.sidecar = state_path(output)
        self.curves = curves_path(output)

    def resume(self, device: torch.device, say: WarnCallback) -> tuple[int, History]:
        """Load the latest weights, optimizer, scaler, discriminator and step from the sidecar; (step, history).

        Raises:
            UsageError: the sidecar is for another model or model config.
        """
        sidecar, model, config = self.sidecar, self.model, self.config_dict
        state = load_state(sidecar)
        if state.get("model") != model.name or state.get("config") != config:
            raise UsageError(f"--resume: {sidecar} is for a {state.get('model')} model with config "
                             f"{state.get('config')}, not this {model.name} with {config}")
        model.load_state_dict(state["state_dict"])
        model.to(device)
        self.optimiser.optimizer.load_state_dict(state["optimizer"])
        if self.optimiser.scaler is not None and state.get("scaler"):
            self.optimiser.scaler.load_state_dict(state["scaler"])
        if self.adversary is not None:
            if state.get("adversarial"):
                self.adversary.load_state_dict(state["adversarial"])
            else:
                say(f"--resume: {sidecar} holds no discriminator; the adversarial term starts with a fresh one")
        known = set(History.__dataclass_fields__)
        return int(state["step"]), History(**{k: v for k, v in state["history"].items() if k in known})

    def after_validation(self, step: int, history: History, metrics: Any, info: dict[str, float],
                         meta: Callable[[int, dict[str, Any]], dict[str, Any]]) -> dict[str, Any] | None:
        """Record ``metrics`` (a ValidationMetrics, or None without held-out data) in ``history`` and ``info``;
        when they beat the best so far (always without metrics) save the checkpoint with ``meta(step, best)``;
        then write the sidecar and the curves. Returns the new best entry, or None when it did not improve."""
        from emrepair.models import save_checkpoint
        from emrepair.training.curves import write_curves

        improved = metrics is None or history.best_psnr is None or metrics.psnr > history.best_psnr
        if metrics is not None:
            history.val_steps.append(step)
            history.val_psnr.append(metrics.psnr)
            history.val_ssim.append(metrics.ssim)
            history.linear_psnr.append(metrics.linear_psnr)
            info.update(val_psnr=metrics.psnr, linear_psnr=metrics.linear_psnr)
        best = None
        if improved:
            history.best_psnr = metrics.psnr if metrics is not None else None
            history.best_step = step
            best = {"step": step, **(metrics.to_dict() if metrics is not None else {})}
            save_checkpoint(self.output, self.model, self.model_config, meta(step, best))
        scaler = self.optimiser.scaler
        save_state(self.sidecar, model_name=self.model.name, config=self.config_dict, step=step, model=self.model,
                   optimizer=self.optimiser.optimizer, scaler_state=scaler.state_dict() if scaler else None,
                   history=history, adversarial=self.adversary.state_dict() if self.adversary else None)
        write_curves(self.curves, history.loss_steps, history.losses, history.val_steps, history.val_psnr,
                     history.linear_psnr)
        return best


def checkpoint_meta(stacks: list[Any], step: int, metrics: dict[str, Any], config: Any, device: torch.device,
                    settings: dict[str, Any]) -> dict[str, Any]:
    """Checkpoint provenance: data, steps, validation metrics, the run's config (``resume`` left out) with the
    effective ``settings`` (patch size, loss, ...), date, hardware, and the licence terms the weights inherit from
    their ``--init`` weights and training data (``weights_licence``)."""
    trained_on = [Path(s.path).name for s in stacks]
    return {
        "trained_on": trained_on,
        "weights_licence": _inherited_terms(getattr(config, "init", None), tuple(trained_on)),
        "training_data": [s.describe() for s in stacks],
        "steps": step,
        "metrics": metrics,
        "config": {**{k: v for k, v in asdict(config).items() if k not in ("resume",)}, **settings},
        "date": utc_now(),
        "hardware": hardware(device),
    }


@functools.lru_cache(maxsize=8)
def _inherited_terms(init: str | None, trained_on: tuple[str, ...]) -> str:
    """``inherited_terms`` once per run (every saved checkpoint records the same terms)."""
    from emrepair.models.licence import inherited_terms

    return inherited_terms(init, list(trained_on))
