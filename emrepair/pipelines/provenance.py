"""Provenance records stored with every output: who made which pixels synthetic, with what."""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
from pathlib import Path
from typing import Any

from emrepair.version import __version__


def sha256_of(path: str | Path, block: int = 1 << 20) -> str:
    """The hex sha256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def base_record(command: str, input_path: str) -> dict[str, Any]:
    """The fields every provenance record starts with."""
    return {
        "emrepair_version": __version__,
        "command": command,
        "input": str(input_path),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
    }


def model_label(architecture: str, requested: str) -> str:
    """How summaries, ``info`` and the provenance name a model: a checkpoint given as a path by its file and
    architecture (``mine.pt (flowunet)``), a registered model by its name (``flowunet``)."""
    path = Path(str(requested)).expanduser()
    if path.suffix and path.is_file():
        return f"{path.name} ({architecture})"
    return architecture
