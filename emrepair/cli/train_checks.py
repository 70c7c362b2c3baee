"""Guard rails of ``train`` and ``eval``: a model no better than linear, and scores on the training sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emrepair.callbacks import WarnCallback


def warn_not_better_than_linear(best: dict[str, Any], warn: WarnCallback) -> bool:
    """WarnCallback (and return True) when the kept checkpoint does not beat linear interpolation on validation PSNR."""
    if "val_psnr" not in best or "linear_psnr" not in best:
        return False
    if best["val_psnr"] > best["linear_psnr"]:
        return False
    warn(f"the best checkpoint ({best['val_psnr']:.2f} dB on the validation sections) is not better than linear "
         f"interpolation ({best['linear_psnr']:.2f} dB); train longer or on more sections, or repair with "
         "--model linear")
    return True


def checkpoint_paths(models: list[str]) -> list[Path]:
    """The --model values of eval that are checkpoint files (not registered model names)."""
    from emrepair.models.registry import REGISTRY

    return [Path(m).expanduser() for m in models if m not in REGISTRY and Path(m).expanduser().is_file()]


def trained_overlap(checkpoint_meta: dict[str, Any], input_path: str, shape: tuple[int, ...],
                    used: set[int]) -> list[int] | None:
    """Sections of ``used`` the checkpoint trained on, when it trained on a stack with the input's file name and
    shape; [] when none overlap; None when it did not train on this stack. A checkpoint from before sections
    were recorded (no ``train_z``) counts every used section outside its validation sections."""
    from emrepair.cli.options import output_target

    names = {Path(input_path).name, output_target(input_path).name}  # stack.h5/raw: "raw" or "stack.h5"
    overlap: set[int] = set()
    found = False
    for stack in checkpoint_meta.get("training_data") or []:
        if stack.get("file") not in names or list(stack.get("shape") or []) != [int(s) for s in shape]:
            continue
        found = True
        if "train_z" in stack:
            overlap |= used & {int(z) for z in stack["train_z"]}
        else:
            overlap |= used - {int(z) for z in stack.get("val_sections") or []}
    return sorted(overlap) if found else None


def warn_trained_overlap(input_path: str, models: list[str], result: Any, warn: WarnCallback) -> list[str]:
    """WarnCallback for each checkpoint that was trained on sections eval dropped or used as neighbours; return the
    checkpoints warned about."""
    from emrepair.models.checkpoint import read_checkpoint

    used = {int(z) for case in result.cases for z in (case.left, case.right, *case.targets)}
    warned = []
    for path in checkpoint_paths(models):
        overlap = trained_overlap(read_checkpoint(path).get("meta") or {}, input_path, result.shape, used)
        if overlap:
            shown = ", ".join(map(str, overlap[:10])) + (", ..." if len(overlap) > 10 else "")
            warn(f"{path.name} was trained on {len(overlap)} of the sections scored here (z {shown}); its scores "
                 "overstate how well it repairs unseen sections")
            warned.append(str(path))
    return warned
