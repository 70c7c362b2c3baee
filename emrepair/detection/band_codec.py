"""A fold's per-pixel band mask in a compact, JSON-safe form: the mask as a 1-bit PNG in base64, with its shape.

Detection segments each fold band from the pixels (``fold_mask``); the repair should cover exactly that band,
not one redrawn from the fold's lines and a single width. The mask travels in the detection report's JSON, in
the repair plan's fold geometry (``"band"``) and in a run's record, so that a resumed run or a worker repairs
the same band as the run that detected it.
"""

from __future__ import annotations

import base64
from typing import Any

import cv2
import numpy as np

from emrepair.errors import InputError


def encode_band(mask: np.ndarray) -> dict[str, Any]:
    """``{"shape": [h, w], "png": base64}`` of a 2-D bool band mask (at the resolution it was found)."""
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D band mask, got shape {mask.shape}")
    ok, png = cv2.imencode(".png", mask.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_BILEVEL, 1])
    if not ok:
        raise ValueError("could not encode the band mask")
    return {"shape": [int(mask.shape[0]), int(mask.shape[1])], "png": base64.b64encode(png.tobytes()).decode()}


def decode_band(data: dict[str, Any], shape: tuple[int, int] | None = None) -> np.ndarray:
    """The bool band mask of ``encode_band``'s output, resized (nearest) to ``shape`` when given.

    Raises:
        InputError: the data is not an encoded band mask of the shape it states.
    """
    try:
        raw = np.frombuffer(base64.b64decode(data["png"], validate=True), np.uint8)
        stored = tuple(int(s) for s in data["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed fold band mask: {exc}") from exc
    image = cv2.imdecode(raw, cv2.IMREAD_GRAYSCALE) if raw.size else None
    if image is None or image.shape != stored:
        raise InputError(f"malformed fold band mask (stated shape {list(stored)})")
    mask = image > 0
    return fit_band(mask, shape) if shape is not None else mask


def fit_band(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A bool band mask at ``shape`` (nearest neighbour; itself when it is that shape already)."""
    if tuple(shape) == mask.shape:
        return mask
    return cv2.resize(mask.astype(np.uint8), (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST) > 0
