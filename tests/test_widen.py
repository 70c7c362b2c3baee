"""Growing a trained U-Net wider (``widen_unet``) keeps its output, and the wider network still learns."""

from __future__ import annotations

import pytest
import torch

from emrepair.models.reslice import ResliceConfig, ResliceModel
from emrepair.models.small_unet import SmallUNet
from emrepair.models.widen import widen_unet


def _trained_looking(unet: SmallUNet) -> SmallUNet:
    """Random weights everywhere, the head included (a fresh head is near zero and would hide mistakes)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.normal_(0.0, 0.2)
    return unet


@pytest.mark.parametrize("widths", [(4, 8, 16), (6, 8, 20), (5, 13, 16)])
def test_widened_unet_computes_the_same(widths: tuple[int, ...]) -> None:
    old = _trained_looking(SmallUNet(3, 2, (4, 8, 16)))
    new = widen_unet(old, widths)
    x = torch.rand(2, 3, 16, 24)
    assert [b[0].out_channels for b in new.down] == list(widths)
    torch.testing.assert_close(new(x), old(x), rtol=0, atol=1e-5)


def test_widened_unet_trains_its_new_channels() -> None:
    old = _trained_looking(SmallUNet(2, 1, (4, 8)))
    new = widen_unet(old, (6, 12))
    optimiser = torch.optim.SGD(new.parameters(), lr=1e-3)
    x, target = torch.rand(2, 2, 8, 8), torch.rand(2, 1, 8, 8)
    for _ in range(3):  # the zeros that read new channels move first, then the new channels themselves
        optimiser.zero_grad()
        torch.nn.functional.mse_loss(new(x), target).backward()
        optimiser.step()
    assert new.head.weight[:, 4:].abs().sum() > 0
    assert new.up[0][0].weight[:, 8:12].abs().sum() > 0


def test_widen_refuses_fewer_levels_or_narrower_ones() -> None:
    old = SmallUNet(2, 1, (4, 8, 16))
    with pytest.raises(ValueError, match="levels"):
        widen_unet(old, (4, 8))
    with pytest.raises(ValueError, match="at least"):
        widen_unet(old, (4, 6, 16))


def test_widened_reslice_keeps_its_output() -> None:
    from emrepair.errors import InputError
    from emrepair.training.reslice import widened

    model = ResliceModel(ResliceConfig(widths=(4, 8), flow=False))
    _trained_looking(model.unet)
    stack = torch.rand(1, 1, 4, 16, 16)
    grown = widened(model, (6, 10)).eval()
    assert grown.config.widths == (6, 10)
    torch.testing.assert_close(grown(stack, 3), model.eval()(stack, 3), rtol=0, atol=1e-5)
    with pytest.raises(InputError, match="widths"):
        widened(model, (2, 8))
