"""The interpolation model classes by name: the one table that the registry's interpolation entries and
``sff``'s stage 1 both read (sff sits in the registry, so it cannot ask the registry)."""

from __future__ import annotations

from emrepair.models.base import InterpolationModel
from emrepair.models.dan import DANConfig, DANModel
from emrepair.models.flow import FlowConfig, FlowModel
from emrepair.models.flowunet import FlowUNetConfig, FlowUNetModel
from emrepair.models.gan import GANConfig, GANModel
from emrepair.models.linear import LinearConfig, LinearModel
from emrepair.models.ssan import SSANConfig, SSANModel
from emrepair.models.tsain import TSAINConfig, TSAINModel

INTERPOLATION_CLASSES: dict[str, tuple[type[InterpolationModel], type]] = {
    "linear": (LinearModel, LinearConfig),
    "flow": (FlowModel, FlowConfig),
    "flowunet": (FlowUNetModel, FlowUNetConfig),
    "ssan": (SSANModel, SSANConfig),
    "dan": (DANModel, DANConfig),
    "tsain": (TSAINModel, TSAINConfig),
    "gan": (GANModel, GANConfig),
}
INTERPOLATORS = tuple(INTERPOLATION_CLASSES)


def build_interpolator(name: str) -> InterpolationModel:
    """A fresh interpolation model of the class registered as ``name``, with its default config.

    Example:
        >>> build_interpolator("linear").kind
        'interpolation'
    """
    cls, config_cls = INTERPOLATION_CLASSES[name]
    return cls(config_cls())
