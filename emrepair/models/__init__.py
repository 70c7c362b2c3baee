"""emrepair.models: pure-PyTorch section interpolators behind a name registry.

``model, meta = load_model("ssan" | "path/to/ckpt.pt", device="cpu")``; then
``out = model(a, b, t)`` with a, b (B, 1, H, W) in [0, 1] and t (B,) in (0, 1).
Models of kind "fold" (``sff``) take ``(folded, left, right, band_mask)``; kind "volume"
(``gan3d``) takes ``(stack, factor)``; ``get_spec(name).kind`` / ``model_kind(model)`` tell which.
"""

from emrepair.models.base import InterpolationModel, check_shape, linear_blend
from emrepair.models.checkpoint import read_checkpoint, save_checkpoint
from emrepair.models.dan import DANConfig, DANModel
from emrepair.models.discriminator import DiscriminatorConfig, PairDiscriminator
from emrepair.models.flow import FlowConfig, FlowModel
from emrepair.models.flowunet import FlowUNetConfig, FlowUNetModel
from emrepair.models.gan import GANConfig, GANModel
from emrepair.models.gan3d import GAN3DConfig, GAN3DModel
from emrepair.models.linear import LinearConfig, LinearModel
from emrepair.models.registry import (
    MODEL_KINDS, WEIGHTS_ENV, ModelMeta, ModelSpec, get_spec, list_models, load_model, model_kind, weights_dirs,
)
from emrepair.models.sff import SFFConfig, SFFModel
from emrepair.models.ssan import SSANConfig, SSANModel
from emrepair.models.tsain import TSAINConfig, TSAINModel

__all__ = [
    "InterpolationModel", "check_shape", "linear_blend", "save_checkpoint", "read_checkpoint",
    "ModelSpec", "ModelMeta", "list_models", "load_model", "get_spec", "weights_dirs", "WEIGHTS_ENV",
    "LinearModel", "LinearConfig", "FlowModel", "FlowConfig", "FlowUNetModel", "FlowUNetConfig", "SSANModel", "SSANConfig",
    "DANModel", "DANConfig", "TSAINModel", "TSAINConfig", "GANModel", "GANConfig", "GAN3DModel",
    "GAN3DConfig", "SFFModel", "SFFConfig", "PairDiscriminator", "DiscriminatorConfig", "MODEL_KINDS",
    "model_kind",
]
