"""Flow is estimated once per section pair and tile, however many sections a run synthesizes between them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emrepair.engine.config import EngineConfig
from emrepair.engine.interpolator import TiledInterpolator
from emrepair.models import flow
from emrepair.models.registry import load_model


def _pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    a = rng.random((size, size)).astype(np.float32)
    return a, np.roll(a, 2, axis=1)


@pytest.mark.parametrize("name", ["flow", "flowunet"])
def test_run_of_three_estimates_each_tiles_flows_once(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _pair(160)
    model = load_model(name, allow_random=True)[0]
    ts = [0.25, 0.5, 0.75]
    engine = TiledInterpolator(model, EngineConfig(tile_size=160, batch_size=1, device="cpu"))
    separately = [engine.interpolate(a, b, [t])[0] for t in ts]
    flow._FLOW_CACHE.clear()
    calls = []
    real = flow.estimate_flow
    monkeypatch.setattr(flow, "estimate_flow", lambda s, d, m: calls.append(1) or real(s, d, m))
    together = engine.interpolate(a, b, ts)
    assert len(calls) == 2 * len(engine.plan(a.shape))  # two directions per tile, not per (tile, t)
    for one, other in zip(separately, together):
        assert np.array_equal(one, other)


def test_different_pairs_are_not_confused() -> None:
    a, b = _pair(64)
    flow._FLOW_CACHE.clear()
    first = flow.batch_flow_warps(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None],
                                  torch.tensor([0.5]))[0]
    c = np.ascontiguousarray(b[::-1])
    second = flow.batch_flow_warps(torch.from_numpy(a)[None, None], torch.from_numpy(c)[None, None],
                                   torch.tensor([0.5]))[0]
    assert np.array_equal(second[0, 0].numpy(), flow.flow_warps(a, c, 0.5)[0])
    assert not np.array_equal(first.numpy(), second.numpy())
