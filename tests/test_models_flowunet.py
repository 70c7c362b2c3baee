"""FlowUNet: starts as the flow baseline, trains, round-trips through a checkpoint, runs in the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emrepair.engine import EngineConfig, TiledInterpolator
from emrepair.models import FlowUNetConfig, FlowUNetModel, load_model, save_checkpoint
from emrepair.models.flow import flow_interpolate

TINY = FlowUNetConfig(widths=(4, 8), halo=8)


def shifted_pair(size: int = 32, shift: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Two smooth sections, the second the first moved ``shift`` px to the right."""
    rng = np.random.default_rng(0)
    base = np.kron(rng.random((size // 4 + 2, size // 4 + 2)), np.ones((4, 4))).astype(np.float32)
    a = base[4:4 + size, 4:4 + size]
    b = base[4:4 + size, 4 - shift:4 - shift + size]
    return torch.from_numpy(a.copy())[None, None], torch.from_numpy(b.copy())[None, None]


def test_fresh_model_reproduces_flow_baseline() -> None:
    torch.manual_seed(0)
    model = FlowUNetModel(TINY).eval()
    a, b = shifted_pair()
    for t in (0.25, 0.5):
        with torch.no_grad():
            out = model(a, b, torch.tensor([t]))[0, 0].numpy()
        expected = flow_interpolate(a[0, 0].numpy(), b[0, 0].numpy(), t)
        assert np.abs(out - np.clip(expected, 0, 1)).max() < 0.02


def test_forward_backward_shapes_and_size_multiple() -> None:
    torch.manual_seed(0)
    model = FlowUNetModel(TINY).train()
    assert model.size_multiple == 2 and model.halo == 8
    a, b = torch.rand(2, 1, 16, 24), torch.rand(2, 1, 16, 24)
    out = model(a, b, torch.tensor([0.3, 0.7]))
    assert out.shape == (2, 1, 16, 24)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(ValueError, match="multiples of 2"):
        model(torch.rand(1, 1, 15, 16), torch.rand(1, 1, 15, 16), torch.tensor([0.5]))


def test_a_few_steps_reduce_the_loss() -> None:
    torch.manual_seed(0)
    model = FlowUNetModel(TINY).train()
    a, b = shifted_pair(shift=0)
    target = torch.full_like(a, 0.5)          # something flow cannot give: the network must learn it
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = (model(a, b, torch.tensor([0.5])) - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_checkpoint_round_trip_and_engine(tmp_path) -> None:
    torch.manual_seed(0)
    model = FlowUNetModel(TINY)
    path = save_checkpoint(tmp_path / "fu.pt", model, TINY, {"trained_on": "synthetic"})
    loaded, meta = load_model(path)
    assert meta.name == "flowunet" and tuple(meta.config["widths"]) == (4, 8)
    a, b = shifted_pair(size=40)
    a_np, b_np = a[0, 0].numpy(), b[0, 0].numpy()
    engine = TiledInterpolator(loaded, EngineConfig(device="cpu", tile_size=32, batch_size=2, precision="fp32"))
    out = engine.interpolate(a_np, b_np, [0.5])[0]
    assert out.shape == (40, 40) and np.isfinite(out).all()


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="flow_method"):
        FlowUNetConfig(flow_method="raft")
    with pytest.raises(ValueError, match="widths"):
        FlowUNetConfig(widths=())
