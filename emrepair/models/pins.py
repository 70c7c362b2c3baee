"""The shipped weights, pinned: their SHA-256 lives in the package, so a deleted or edited ``.sha256`` sidecar
cannot make tampered weights load silently; and where a weights file comes from, for provenance."""

from __future__ import annotations

import os
import sys
from pathlib import Path

WEIGHTS_ENV = "EMREPAIR_WEIGHTS"

# SHA-256 of each shipped weights file (weights/<name>.pt): loading refuses shipped weights that differ.
PINNED = {
    "dan": "6d799f3a903d2c675aec93f21b3cb6916d1faad17955dadfc4ab53b2a1cc49a7",
    "flowunet": "10ca3c3c0fd07898259f8327c3a738d1982117ee4ab1ec55000e85dd1aff0af3",
    "gan": "66fda23c279991db9f149c834c0ac2afa4f9453922c1b991b3eeb75643d75cd7",
    "gan3d": "8b5ab361872ef15b1d6d8b8f1be38bff23fa949c5d5aa7ebcf5124b4f60b6ffc",
    "reslice": "bfd0f10c12260771288d81fd7061b0245a7e3e51565a475d8d8eeb82cf756def",
    "sff": "63e952ebcb0ed6b695826ba98a4a3c1520cea2fd123b498040ddd4769ecbca7c",
    "ssan": "226979c4d1caa5b1eb166b09965ca95607e6459a9eaa349b2abb693d59b423dd",
    "tsain": "a5c5c86cfb938e6ed9d2e0a96eee4110cc9ffc7e73d30788bb0a98fa29e43532",
}


def package_weights_dirs() -> list[Path]:
    """Where the shipped weights live: ``weights/`` beside the package (a source checkout or editable install),
    then ``<prefix>/share/emrepair/weights`` (where ``pip install .`` puts them)."""
    return [Path(__file__).resolve().parents[2] / "weights",
            Path(sys.prefix) / "share" / "emrepair" / "weights"]


def weights_origin(path: Path) -> str:
    """Where a weights file comes from: "shipped" (a package weights folder), "EMREPAIR_WEIGHTS" or "path"."""
    folder = path.resolve().parent
    if any(folder == d.resolve() for d in package_weights_dirs() if d.is_dir()):
        return "shipped"
    env = os.environ.get(WEIGHTS_ENV)
    if env and folder == Path(env).expanduser().resolve():
        return "EMREPAIR_WEIGHTS"
    return "path"
