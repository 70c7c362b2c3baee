"""Every registered model's contract, the baselines' exact behaviour, SSAN/DAN building blocks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from emrepair.models import DANModel, FlowConfig, FlowModel, SSANModel, check_shape, list_models, load_model
from emrepair.models.attention_net import AttentionConfig
from emrepair.models.dan import DANConfig
from emrepair.models.deformable import deformable_sample
from emrepair.models.sparse_attention import (
    GroupSelfAttention, SparseSelfAttention2d, blocks_to_tokens, deinterlace, interlace, tokens_to_blocks,
)

MODEL_NAMES = [spec.name for spec in list_models()]
LEARNED = [spec.name for spec in list_models() if spec.learned]


def pair(batch: int, size: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two random (B, 1, size, size) sections in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(batch, 1, size, size, generator=gen)
    b = torch.rand(batch, 1, size, size, generator=gen)
    return a.to(device), b.to(device)


def min_size(model: torch.nn.Module) -> int:
    """The smallest square side that is a multiple of the model's size_multiple and at least 32."""
    m = model.size_multiple
    return m * max(1, -(-32 // m))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_backward_contract(name: str, device: torch.device, weights_dir: Path) -> None:
    torch.manual_seed(0)
    model, meta = load_model(name, device=device, allow_random=True)
    assert meta.name == name and isinstance(model.halo, int) and isinstance(model.size_multiple, int)
    model.train()
    size = min_size(model)
    a, b = pair(2, size, device)
    a.requires_grad_(True)
    t = torch.tensor([0.25, 0.5], device=device)
    out = model(a, b, t)
    assert out.shape == (2, 1, size, size) and out.dtype == torch.float32 and out.device.type == device.type
    assert torch.isfinite(out).all()
    if name == "flow":
        return  # OpenCV flow is not differentiable
    out.square().mean().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    for pname, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname


@pytest.mark.parametrize("name", LEARNED)
def test_learned_models_depend_on_t_and_start_near_linear(name: str, weights_dir: Path) -> None:
    torch.manual_seed(0)
    model, _ = load_model(name, allow_random=True)
    a, b = pair(1, min_size(model), torch.device("cpu"))
    with torch.no_grad():
        outs = {t: model(a, b, torch.tensor([t])) for t in (0.2, 0.8)}
    # flowunet starts as the flow baseline, every other model as linear interpolation
    start = load_model("flow" if name == "flowunet" else "linear")[0]
    with torch.no_grad():
        residuals = {t: out - start(a, b, torch.tensor([t])) for t, out in outs.items()}
    assert not torch.allclose(outs[0.2], outs[0.8])
    # The network part itself is t-conditioned, not only the prior it starts from.
    assert not torch.allclose(residuals[0.2], residuals[0.8], atol=0, rtol=0)
    assert residuals[0.2].abs().max() < 0.05 and residuals[0.8].abs().max() < 0.05


@pytest.mark.parametrize("name", LEARNED)
def test_learned_models_run_in_bfloat16(name: str, weights_dir: Path) -> None:
    torch.manual_seed(0)
    model, _ = load_model(name, allow_random=True)
    model = model.to(torch.bfloat16)
    a, _ = pair(1, min_size(model), torch.device("cpu"))
    with torch.no_grad():
        out = model(a.bfloat16(), a.bfloat16(), torch.tensor([0.4], dtype=torch.bfloat16))
    # Identical neighbours: a fresh model must return them (deformable sampling stays in float32).
    assert out.dtype == torch.bfloat16 and (out.float() - a).abs().max() < 0.05


@pytest.mark.parametrize("cls", [SSANModel, DANModel])
def test_attention_gammas_start_at_zero(cls: type) -> None:
    model = cls()
    gammas = [m.gamma for m in model.modules() if isinstance(m, GroupSelfAttention)]
    assert len(gammas) == 3 and all(float(g.detach()) == 0.0 for g in gammas)
    assert all(g.requires_grad for g in gammas)


def test_linear_exact_values() -> None:
    model, meta = load_model("linear")
    assert meta.weights_path is None and model.halo == 0 and model.size_multiple == 1
    a = torch.full((2, 1, 3, 5), 0.2)
    b = torch.full((2, 1, 3, 5), 0.6)
    out = model(a, b, torch.tensor([0.25, 0.75]))
    assert torch.allclose(out[0], torch.full((1, 3, 5), 0.3))
    assert torch.allclose(out[1], torch.full((1, 3, 5), 0.5))


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` translated by (dx, dy) pixels, reflecting at the borders."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("method", ["dis", "dis-smooth", "farneback"])
def test_flow_reproduces_half_shift(method: str, device: torch.device) -> None:
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.random((128, 128)).astype(np.float32), (0, 0), 3)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    a, b, middle = texture, shifted(texture, 6, -4), shifted(texture, 3, -2)
    model = FlowModel(FlowConfig(method=method)).eval()
    a_t, b_t = (torch.from_numpy(x)[None, None].to(device) for x in (a, b))
    out = model(a_t, b_t, torch.tensor([0.5], device=device))
    assert out.device.type == device.type
    inner = (slice(16, -16), slice(16, -16))
    err = np.abs(out[0, 0].cpu().numpy() - middle)[inner].mean()
    linear_err = np.abs(0.5 * (a + b) - middle)[inner].mean()
    assert err < 0.01 < linear_err


def test_flow_config_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match="flow method"):
        FlowConfig(method="lucas-kanade")


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "t_shape", "match"),
    [
        ((2, 3, 128, 128), (2, 3, 128, 128), (2,), r"a must have shape \(B,1,H,W\)"),
        ((2, 1, 128, 128), (2, 1, 128, 64), (2,), "b must have shape"),
        ((2, 1, 128, 128), (2, 1, 128, 128), (3,), "t must have shape"),
        ((2, 1, 128, 128), (2, 1, 128, 128), (2, 1), "t must have shape"),
        ((1, 1, 100, 128), (1, 1, 100, 128), (1,), "multiples of 128"),
        ((1, 128, 128), (1, 128, 128), (1,), "a must have shape"),
    ],
)
def test_bad_shapes_raise(a_shape: tuple, b_shape: tuple, t_shape: tuple, match: str) -> None:
    model = SSANModel()
    with pytest.raises(ValueError, match=match):
        model(torch.rand(a_shape), torch.rand(b_shape), torch.full(t_shape, 0.5))


def test_bad_values_and_dtypes_raise() -> None:
    model, _ = load_model("linear")
    a = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        model(a, a, torch.tensor([1.5]))
    with pytest.raises(ValueError, match="floating-point"):
        model(a, a, torch.tensor([1]))
    with pytest.raises(ValueError, match="share dtype"):
        model(a, a.double(), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="torch.Tensor"):
        model(a.numpy(), a, torch.tensor([0.5]))


def test_check_shape_binds_and_compares() -> None:
    dims = check_shape(torch.zeros(2, 1, 4, 6), "B,1,H,W")
    assert dims == {"B": 2, "H": 4, "W": 6}
    with pytest.raises(ValueError, match="with H=5"):
        check_shape(torch.zeros(2, 1, 4, 6), "B,1,H,W", "x", H=5)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="downsample"):
        AttentionConfig(downsample=3)
    with pytest.raises(ValueError, match="samples"):
        DANConfig(samples=0)
    assert AttentionConfig(downsample=2, block=4, inner_block=4).size_multiple == 32


def test_interlace_and_blocks_are_inverse_permutations() -> None:
    x = torch.randn(2, 3, 16, 24)
    for p in (2, 4, 8):
        assert torch.equal(deinterlace(interlace(x, p), x.shape, p), x)
        assert torch.equal(tokens_to_blocks(blocks_to_tokens(x, p), x.shape, p), x)
    grids = interlace(x, 4)
    # Group (1, 2) of batch item 0 holds the positions y = 1 mod 4, x = 2 mod 4.
    assert torch.equal(grids[1 * 4 + 2], x[0, :, 1::4, 2::4])
    assert torch.equal(blocks_to_tokens(x, 4)[1].T, x[0, :, 0:4, 4:8].reshape(3, 16))


def test_sparse_attention_is_identity_at_init_and_global_after() -> None:
    torch.manual_seed(0)
    layer = SparseSelfAttention2d(channels=8, block=4, inner_block=2)
    x = torch.randn(1, 8, 16, 16, requires_grad=True)
    assert torch.equal(layer(x), x)
    with torch.no_grad():
        for module in layer.modules():
            if isinstance(module, GroupSelfAttention):
                module.gamma.fill_(1.0)
    layer(x)[0, :, 5, 9].sum().backward()
    # Three passes (long-long, long-short, short) connect one output to every input position.
    assert (x.grad.abs().sum(dim=1) > 0).all()


def test_deformable_sample_shifts_and_identity() -> None:
    image = torch.rand(1, 1, 12, 16)
    zero = torch.zeros(1, 2, 2, 12, 16)
    uniform = torch.full((1, 2, 12, 16), 0.5)
    assert torch.allclose(deformable_sample(image, zero, uniform), image, atol=1e-6)
    offsets = zero.clone()
    offsets[:, 0, 0] = 3.0  # first sample 3 px to the right
    only_first = torch.zeros(1, 2, 12, 16)
    only_first[:, 0] = 1.0
    out = deformable_sample(image, offsets, only_first)
    assert torch.allclose(out[..., :-3], image[..., 3:], atol=1e-6)
    with pytest.raises(ValueError, match="offsets must have shape"):
        deformable_sample(image, torch.zeros(1, 2, 3, 12, 16), uniform)


@pytest.mark.data
def test_flow_beats_linear_on_decimated_fib_sem(shared_data: Path) -> None:
    h5py = pytest.importorskip("h5py")
    with h5py.File(shared_data / "neuroproof_medulla_train1.h5", "r") as fh:
        raw = fh["raw"][100:105].astype(np.float32) / 255.0  # 10 nm sections; a, b are 40 nm apart
    a = torch.from_numpy(raw[0])[None, None]
    b = torch.from_numpy(raw[4])[None, None]

    def psnr(name: str, z: int, t: float) -> float:
        model, _ = load_model(name)
        out = model(a, b, torch.tensor([t]))[0, 0].numpy()
        return float(10 * np.log10(1.0 / np.mean((out - raw[z]) ** 2)))

    for z, t in ((1, 0.25), (2, 0.5)):
        linear, flow = psnr("linear", z, t), psnr("flow", z, t)
        assert linear > 25.0 and flow > linear + 0.3, (z, linear, flow)
