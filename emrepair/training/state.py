"""What training keeps between runs: the ``<out>.state.pt`` sidecar for --resume, and checkpoint provenance."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from emrepair.errors import InputError
from emrepair.models.checkpoint import atomic_torch_save


@dataclass
class History:
    """Loss per step and validation metrics per evaluation, for curves and resuming."""

    loss_steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_psnr: list[float] = field(default_factory=list)
    val_ssim: list[float] = field(default_factory=list)
    linear_psnr: list[float] = field(default_factory=list)
    d_losses: list[float] = field(default_factory=list)       # per step, adversarial runs only
    adv_losses: list[float] = field(default_factory=list)     # weighted term in the total (0 during warm-up)
    best_psnr: float | None = None
    best_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (loadable with ``weights_only=True``)."""
        return asdict(self)


def state_path(output: str | Path) -> Path:
    """The resume sidecar of a checkpoint: ``mine.pt`` -> ``mine.pt.state.pt``."""
    output = Path(output)
    return output.with_name(output.name + ".state.pt")


def curves_path(output: str | Path) -> Path:
    """The curves PNG beside a checkpoint: ``mine.pt`` -> ``mine.curves.png``."""
    output = Path(output)
    return output.with_name(output.stem + ".curves.png")


def save_state(path: Path, *, model_name: str, config: dict[str, Any], step: int, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer, scaler_state: dict[str, Any] | None, history: History,
               adversarial: dict[str, Any] | None = None) -> None:
    """Write the latest weights, optimizer and step state atomically (and the discriminator's, if any)."""
    payload = {
        "model": model_name, "config": config, "step": step,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(), "scaler": scaler_state or {}, "history": history.to_dict(),
    }
    if adversarial is not None:
        payload["adversarial"] = adversarial
    atomic_torch_save(payload, path, "training state")


def load_state(path: Path) -> dict[str, Any]:
    """Read a resume sidecar (``weights_only=True``).

    Raises:
        InputError: missing or unreadable.
    """
    if not path.is_file():
        raise InputError(f"--resume: no training state {path} (it is written beside the checkpoint while training)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise InputError(f"cannot read training state {path}: {type(exc).__name__}") from exc
    if not isinstance(payload, dict) or "step" not in payload or "state_dict" not in payload:
        raise InputError(f"{path} is not an emrepair training state")
    return payload


def hardware(device: torch.device) -> dict[str, Any]:
    """The machine a model was trained on."""
    info: dict[str, Any] = {"device": str(device), "torch": str(torch.__version__), "cpu_threads": torch.get_num_threads(),
                            "platform": platform.platform(), "processor": platform.processor() or platform.machine()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def utc_now() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
