"""The one tiled aggregator: channels per item, skipped tiles, progress and the out-of-memory back-off."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emrepair.engine.aggregator import TiledAggregator
from emrepair.engine.tiling import auto_overlap
from emrepair.errors import UsageError


def aggregator(**kwargs: object) -> TiledAggregator:
    return TiledAggregator(torch.nn.Identity(), torch.device("cpu"), halo=0, size_multiple=8, **kwargs)


def test_identity_items_give_the_input_back_in_every_channel() -> None:
    x = np.random.default_rng(0).random((3, 45, 37)).astype(np.float32)
    calls: list[tuple[int, int]] = []

    def forward(crops: list[torch.Tensor], ks: list[int]) -> torch.Tensor:
        return crops[0][:, 0] * (1 + torch.tensor(ks, dtype=torch.float32)[:, None, None, None])

    out = aggregator(batch_size=3).run([x], forward, lambda: 16, lambda t: auto_overlap(t, 0), channels=3,
                                       per_tile=2, progress=lambda done, total: calls.append((done, total)))
    assert out.shape == (6, 45, 37) and out.dtype == np.float32
    np.testing.assert_allclose(out[:3], x, rtol=1e-6)
    np.testing.assert_allclose(out[3:], 2 * x, rtol=1e-6)
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted({d for d, _ in calls})


def test_skipped_tiles_leave_zeros_and_still_count() -> None:
    x = np.ones((64, 64), np.float32)
    calls: list[tuple[int, int]] = []
    out = aggregator().run([x], lambda crops, ks: crops[0], lambda: 32, lambda t: 0,
                           needed=lambda tile: tile.x0 == 0, progress=lambda d, t: calls.append((d, t)))[0]
    assert (out[:, :32] == 1).all() and (out[:, 32:] == 0).all()
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]


class OomAbove:
    """A forward that runs out of CUDA memory above ``items`` items of more than ``side`` pixels a side."""

    def __init__(self, items: int, side: int) -> None:
        self.items, self.side, self.seen = items, side, []

    def __call__(self, crops: list[torch.Tensor], ks: list[int]) -> torch.Tensor:
        self.seen.append((crops[0].shape[0], crops[0].shape[-1]))
        if crops[0].shape[0] > self.items or crops[0].shape[-1] > self.side:
            raise torch.cuda.OutOfMemoryError("simulated")
        return crops[0]


def test_out_of_memory_halves_the_batch_then_the_tile() -> None:
    x = np.random.default_rng(1).random((256, 256)).astype(np.float32)
    forward = OomAbove(items=1, side=128)
    tiled = aggregator(batch_size=4)
    out = tiled.run([x], forward, lambda: 256, lambda t: t // 8, clip=True)[0]
    np.testing.assert_allclose(out, x, rtol=1e-6)
    assert forward.seen == [(1, 256), (4, 128), (2, 128)] + [(1, 128)] * 9  # one item: the tile halves first
    assert tiled.tile_cap == 128 and tiled.batch_size == 1
    fixed = aggregator(batch_size=4, fixed_tile=True)
    with pytest.raises(UsageError, match="out of GPU memory"):
        fixed.run([x], OomAbove(items=1, side=64), lambda: 128, lambda t: t // 8)
    assert fixed.batch_size == 1 and fixed.tile_cap is None
