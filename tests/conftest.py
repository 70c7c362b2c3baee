"""Shared fixtures: the real data folder (skipped when absent) and the devices to test on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def shared_data() -> Path:
    """The folder of real EM stacks beside the checkout; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each test using this runs on CPU, and on CUDA where it exists."""
    return torch.device(request.param)


@pytest.fixture
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights folder that is the only one searched: learned models have no shipped weights
    (``load_model(name, allow_random=True)`` then gives a freshly initialised model)."""
    from emrepair.models import registry

    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(registry, "weights_dirs", lambda: [folder])
    return folder
