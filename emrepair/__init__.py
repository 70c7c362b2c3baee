"""emrepair: find and repair missing sections and support-film folds in serial-section EM volumes.

The Python API (``emrepair.api``): ``detect``, ``fix``, ``upsample_z`` and ``train`` take a NumPy array (z, y, x)
or a volume's path; they are imported on first use, so ``import emrepair`` stays instant.
"""

from typing import Any

from emrepair.version import __version__

__all__ = ["__version__", "detect", "fix", "train", "upsample_z"]
API = ("detect", "fix", "train", "upsample_z", "ArrayResult", "DetectResult")


def __getattr__(name: str) -> Any:
    if name in API:
        from emrepair import api

        return getattr(api, name)
    raise AttributeError(f"module 'emrepair' has no attribute {name!r}")
