"""Small volumes, files and comparisons shared by the tests (tests/ is on sys.path: no __init__.py)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import zarr

from emrepair.io import open_volume


def textured_stack(depth: int = 12, size: int = 48, dtype: str = "uint8", seed: int = 0) -> np.ndarray:
    """A stack of smooth random sections (values well inside the dtype's range)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(depth, size // 4, size // 4))
    up = np.kron(base, np.ones((1, 4, 4)))
    unit = (up - up.min()) / (up.max() - up.min())
    if dtype == "uint8":
        return np.round(20 + 200 * unit).astype(np.uint8)
    if dtype == "uint16":
        return np.round(500 + 3000 * unit).astype(np.uint16)
    return unit.astype(np.float32)


def drifting_tissue(depth: int = 5, size: int = 192, seed: int = 0) -> np.ndarray:
    """EM-like stand-in: smooth random texture with a little pixel noise, drifting slowly in z (uint8)."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((size + 8 * depth, size + 8 * depth)).astype(np.float32), (0, 0), 2.0)
    base = (base - base.min()) / (base.max() - base.min())
    stack = np.stack([base[2 * z:2 * z + size, 3 * z:3 * z + size] for z in range(depth)])
    stack = stack + rng.normal(0, 0.01, stack.shape)
    return np.clip(255 * (0.3 + 0.5 * stack), 0, 255).astype(np.uint8)


def write_zarr(path: Path, data: np.ndarray, chunks: tuple[int, int, int] = (2, 32, 32)) -> str:
    """A plain Zarr v3 array store holding ``data``."""
    arr = zarr.open_array(str(path), mode="w", shape=data.shape, chunks=chunks, dtype=data.dtype)
    arr[:] = data
    return str(path)


def read_all(path: Path | str) -> np.ndarray:
    """Every section of a volume, stacked."""
    with open_volume(path) as vol:
        return np.stack([vol.read_section(z) for z in range(vol.shape[0])])


def smooth_stack(depth: int = 8, size: int = 64, dtype: str = "uint8", seed: int = 0) -> np.ndarray:
    """Smooth textured sections that drift slowly along z (no section looks defective), in ``dtype``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    phases = rng.uniform(0, 2 * np.pi, 3)
    unit = np.stack([np.sin(xx / 5 + phases[0] + 0.2 * z) + np.cos(yy / 7 + phases[1] - 0.15 * z)
                     + 0.5 * np.sin((xx + yy) / 9 + phases[2]) for z in range(depth)])
    unit = (unit - unit.min()) / (unit.max() - unit.min())
    if dtype == "uint8":
        return np.round(30 + 190 * unit).astype(np.uint8)
    if dtype == "uint16":
        return np.round(1000 + 3000 * unit).astype(np.uint16)
    return (unit * 5.0 - 1.0).astype(np.float32)


def write_h5(path: Path, data: np.ndarray, resolution: tuple[float, float, float] = (40.0, 4.0, 4.0)) -> str:
    """A one-dataset HDF5 file (``raw``, one chunk per section) with a voxel size; returns its path."""
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=data, chunks=(1, *data.shape[1:]))
        f["raw"].attrs["resolution"] = resolution
    return str(path)


def assert_trains_from_linear(model: Any, a: Any, b: Any, t: Any, tolerance: float = 0.05) -> Any:
    """A fresh interpolation model in train mode: output of the input's shape within ``tolerance`` of the
    t-weighted linear blend, and a backward pass that gives every parameter a finite gradient. Returns the output."""
    import torch

    out = model(a, b, t)
    assert out.shape == a.shape
    linear = (1 - t.view(-1, 1, 1, 1)) * a + t.view(-1, 1, 1, 1) * b
    assert (out - linear).abs().max() < tolerance
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    return out


def refused_to_open(path: Path, match: str, **kwargs: Any) -> str:
    """Open ``path``, expect a one-line InputError matching ``match``; return its text."""
    import pytest

    from emrepair.errors import InputError

    with pytest.raises(InputError, match=match) as info:
        open_volume(path, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def ome_image(tmp_path: Path, multiscales: object) -> Path:
    """A 3 x 8 x 8 Zarr v2 OME image whose ``multiscales`` metadata is given as is (valid or not)."""
    path = tmp_path / "img.ome.zarr"
    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    g.create_array("0", shape=(3, 8, 8), dtype="uint8")[:] = 1
    g.attrs["multiscales"] = multiscales
    return path


@contextlib.contextmanager
def fail_after(seconds: int) -> Iterator[None]:
    """Fail with TimeoutError, rather than hang the suite, when the block runs longer (something blocks on a FIFO)."""
    def alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
