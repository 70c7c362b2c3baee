"""Checkpoint files: ``{"model": name, "config": dict, "state_dict": tensors, "meta": dict}``."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emrepair.errors import InputError, InputWarning, OutputError

CHECKPOINT_KEYS = ("model", "config", "state_dict", "meta")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def sidecar_paths(path: Path) -> list[Path]:
    """Where a published checksum may sit: ``ssan.pt.sha256`` or ``ssan.sha256``."""
    return [path.with_name(path.name + ".sha256"), path.with_suffix(".sha256")]


def verify_sidecar(path: Path, digest: str) -> None:
    """Compare ``digest`` with a ``.sha256`` file beside ``path`` when there is one.

    Raises:
        InputError: when the file's checksum differs from the published one.
    """
    for sidecar in sidecar_paths(path):
        if sidecar.is_file():
            text = sidecar.read_text().split()
            expected = text[0].lower() if text else ""
            if expected != digest:
                raise InputError(
                    f"weights {path} fail their checksum ({sidecar.name} says {expected[:12]}..., "
                    f"file is {digest[:12]}...); download them again"
                )
            return


def verify_origin(path: Path, digest: str, name: str | None, pinned: str | None, origin: str,
                  all_pins: set[str]) -> str:
    """Decide what provenance calls a weights file, from its hash and where it was found.

    Args:
        path, digest: the file and its SHA-256.
        name: the registry model it is loaded as (None for a checkpoint given by path).
        pinned: the hash the package pins for ``name``'s shipped weights (None: no shipped weights).
        origin: "shipped" (found in a package weights folder), "EMREPAIR_WEIGHTS" or "path".
        all_pins: every pinned hash (a path to a copy of shipped weights is still the shipped weights).

    Returns:
        "shipped" when the file is byte-identical to shipped weights, else ``origin``.

    Raises:
        InputError: shipped weights (in a package weights folder) whose hash is not the pinned one.
    """
    if digest == pinned or (pinned is None and digest in all_pins):
        return "shipped"
    if origin == "shipped" and pinned is not None:
        raise InputError(f"weights {path} are not the ones this emrepair ships (sha256 {digest[:16]}..., pinned "
                         f"{pinned[:16]}...); reinstall emrepair, or load your own file with --model PATH")
    where = "from $EMREPAIR_WEIGHTS" if origin == "EMREPAIR_WEIGHTS" else "given by path"
    what = f"not emrepair's shipped {name} weights" if pinned else "not weights emrepair ships"
    warnings.warn(f"using weights {path} ({where}, {what}): sha256 {digest}", InputWarning, stacklevel=4)
    return origin


def save_checkpoint(path: str | Path, model: nn.Module, config: Any, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights, its config dataclass and ``meta`` (e.g. trained_on) atomically.

    Raises:
        OutputError: when the folder does not exist or the file cannot be written.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write checkpoint {path}: folder {path.parent} does not exist")
    if not is_dataclass(config):
        raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")
    payload = {
        "model": getattr(model, "name", type(model).__name__),
        "config": asdict(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    atomic_torch_save(payload, path, "checkpoint")
    return path


def atomic_torch_save(payload: dict[str, Any], path: Path, what: str) -> None:
    """``torch.save`` to a temporary file beside ``path``, then move it into place (OutputError on failure)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``) onto the CPU.

    Raises:
        InputError: when the file is unreadable or not an emrepair checkpoint.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise InputError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if not isinstance(payload, dict) or any(key not in payload for key in CHECKPOINT_KEYS):
        raise InputError(f"{path} is not an emrepair checkpoint (needs keys {', '.join(CHECKPOINT_KEYS)})")
    return payload
