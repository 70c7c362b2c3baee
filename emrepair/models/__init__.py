"""emrepair.models: pure-PyTorch section interpolators behind a name registry.

``model, meta = load_model("ssan" | "path/to/ckpt.pt", device="cpu")``; then
``out = model(a, b, t)`` with a, b (B, 1, H, W) in [0, 1] and t (B,) in (0, 1).
"""

from emrepair.models.base import InterpolationModel, check_shape, linear_blend
from emrepair.models.checkpoint import read_checkpoint, save_checkpoint
from emrepair.models.dan import DANConfig, DANModel
from emrepair.models.flow import FlowConfig, FlowModel
from emrepair.models.linear import LinearConfig, LinearModel
from emrepair.models.registry import (
    WEIGHTS_ENV, ModelMeta, ModelSpec, get_spec, list_models, load_model, weights_dirs,
)
from emrepair.models.ssan import SSANConfig, SSANModel

__all__ = [
    "InterpolationModel", "check_shape", "linear_blend", "save_checkpoint", "read_checkpoint",
    "ModelSpec", "ModelMeta", "list_models", "load_model", "get_spec", "weights_dirs", "WEIGHTS_ENV",
    "LinearModel", "LinearConfig", "FlowModel", "FlowConfig", "SSANModel", "SSANConfig",
    "DANModel", "DANConfig",
]
