"""The model registry: names -> classes, configs and shipped weights; loading by name or path."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emrepair.choices import ModelKind, values
from emrepair.errors import InputError, UsageError
from emrepair.models.base import InterpolationModel, channels_last_convs
from emrepair.models.checkpoint import file_sha256, read_checkpoint, verify_origin, verify_sidecar
from emrepair.models.gan3d import GAN3DConfig, GAN3DModel
from emrepair.models.interpolators import INTERPOLATION_CLASSES
from emrepair.models.pins import (
    PINNED,
    WEIGHTS_ENV,
    package_weights_dirs,
    weights_origin,
)
from emrepair.models.reslice import ResliceConfig, ResliceModel
from emrepair.models.sff import SFFConfig, SFFModel

MODEL_KINDS = values(ModelKind)
TRAIN_HINTS = {
    "interpolation": "train one with `emrepair train` or pass --model flow",
    "fold": "train one with `emrepair train --model sff` or use mask-and-fill",
    "volume": "train one first or use an interpolation model",
}


def weights_dirs() -> list[Path]:
    """Folders searched for weights: ``$EMREPAIR_WEIGHTS`` first, then :func:`package_weights_dirs`."""
    dirs = []
    if os.environ.get(WEIGHTS_ENV):
        dirs.append(Path(os.environ[WEIGHTS_ENV]).expanduser())
    return dirs + package_weights_dirs()


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes:
        name: registry name, as given to ``--model``.
        cls: the model class (an InterpolationModel subclass for kind "interpolation").
        config_cls: its config dataclass.
        weights_filename: default weights file searched in :func:`weights_dirs` (None: weight-free).
        learned: whether the model needs trained weights.
        description: one line for ``emrepair models``-style listings.
        kind: the interface the model offers: "interpolation" (``model(a, b, t)``), "fold"
            (``model(folded, left, right, band_mask)``, see ``emrepair.engine.fold_repair``) or
            "volume" (``model(stack, factor)``: z super-resolution of a (B, 1, D, H, W) stack).
        weights_sha256: the SHA-256 of the shipped weights file, pinned here in the package (the ``.sha256``
            sidecar beside the file is only a second copy). Shipped weights that differ are refused; other
            weights (``$EMREPAIR_WEIGHTS``, a checkpoint path) load with a warning naming their hash. Whoever
            ships new weights updates this pin and the sidecar together (tests/test_weights_integrity.py).
        beats_flow: whether the shipped weights beat the weight-free ``flow`` baseline on held-out sections of
            every stack kind they serve (docs/benchmarks.md); ``--model auto`` picks only such models. None: not
            a learned repair model compared with flow (linear, flow, the fold model).
        standing: where the shipped weights stand beside flow, in a few words, for ``emrepair models``.
    """

    name: str
    cls: type[nn.Module]
    config_cls: type
    weights_filename: str | None
    learned: bool
    description: str
    kind: str = ModelKind.INTERPOLATION.value
    weights_sha256: str | None = None
    beats_flow: bool | None = None
    standing: str = ""

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {self.kind!r}")

    def weights_path(self) -> Path | None:
        """The first existing default weights file, or None."""
        if self.weights_filename is None:
            return None
        for folder in weights_dirs():
            candidate = folder / self.weights_filename
            if candidate.is_file():
                return candidate
        return None

    def has_weights(self) -> bool:
        """True for weight-free models and for learned ones whose weights are present."""
        return not self.learned or self.weights_path() is not None

    def trained_on(self) -> str | None:
        """What the shipped weights were trained on: a ``<stem>.json`` model card's ``trained_on``,
        else the checkpoint's ``meta["trained_on"]``; None when unknown or weight-free."""
        path = self.weights_path()
        if path is None:
            return None
        card = path.with_suffix(".json")
        if card.is_file():
            try:
                value = json.loads(card.read_text()).get("trained_on")
            except (OSError, ValueError, AttributeError):
                value = None
            if value:
                return describe_trained_on(value)
        try:
            value = read_checkpoint(path)["meta"].get("trained_on")
        except InputError:
            return None
        return describe_trained_on(value) if value else None


def describe_trained_on(value: Any) -> str:
    """A trained_on entry (string or list of names) as one string."""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class ModelMeta:
    """Provenance of a loaded model, for output attributes and reports."""

    name: str
    config: dict[str, Any]
    weights_path: str | None
    weights_sha256: str | None
    trained_on: str | None
    weights_source: str | None = None  # "shipped" (matches the pin), "EMREPAIR_WEIGHTS", "path"; None: no weights

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return asdict(self)


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("linear", *INTERPOLATION_CLASSES["linear"], None, False,
                  "cross-fade (1-t) a + t b; no weights"),
        ModelSpec("flow", *INTERPOLATION_CLASSES["flow"], None, False,
                  "OpenCV DIS optical flow both ways, warped to t and blended; no weights"),
        ModelSpec("flowunet", *INTERPOLATION_CLASSES["flowunet"], "flowunet.pt", True,
                  "DIS flow warps fused by a U-Net (blend weight + residual); starts as flow (ours)",
                  weights_sha256=PINNED["flowunet"], beats_flow=True,
                  standing="beats flow on held-out ssTEM and unseen FIB-SEM"),
        ModelSpec("ssan", *INTERPOLATION_CLASSES["ssan"], "ssan.pt", True,
                  "sparse self-attention aggregation network (Wang et al. 2021), t-conditioned",
                  weights_sha256=PINNED["ssan"], beats_flow=False,
                  standing="beats flow on held-out ssTEM, below it on unseen FIB-SEM"),
        ModelSpec("dan", *INTERPOLATION_CLASSES["dan"], "dan.pt", True,
                  "deformation-aware network: SSAN front end, deformable warps and blendnet",
                  weights_sha256=PINNED["dan"], beats_flow=False,
                  standing="beats flow on held-out ssTEM, below it on unseen FIB-SEM"),
        ModelSpec("tsain", *INTERPOLATION_CLASSES["tsain"], "tsain.pt", True,
                  "temporal spatial-adaptive interpolation with deformable refinement (TSADR), t-conditioned",
                  weights_sha256=PINNED["tsain"], beats_flow=False,
                  standing="below flow everywhere: it still reproduces linear (300 CPU steps)"),
        ModelSpec("gan", *INTERPOLATION_CLASSES["gan"], "gan.pt", True,
                  "Jain's fully convolutional generator (2-D modules, 3-D fusion), adversarially trained",
                  weights_sha256=PINNED["gan"], beats_flow=False,
                  standing="below flow everywhere: it still reproduces linear (300 CPU steps)"),
        ModelSpec("gan3d", GAN3DModel, GAN3DConfig, "gan3d.pt", True,
                  "Jain's 3-D z super-resolution generator (transposed 3-D conv along z)", kind="volume",
                  weights_sha256=PINNED["gan3d"], beats_flow=False,
                  standing="beats linear but not flow in upsample-z"),
        ModelSpec("reslice", ResliceModel, ResliceConfig, "reslice.pt", True,
                  "z super-resolution by a U-Net on the xz and yz reslices of a window, flow warps as inputs (ours)",
                  kind="volume", weights_sha256=PINNED["reslice"], beats_flow=True,
                  standing="beats flow on unseen FIB-SEM (upsample-z, fix)"),
        ModelSpec("sff", SFFModel, SFFConfig, "sff.pt", True,
                  "fold repair (Huang et al.): contrast correction, interpolation, unfolding flow, fusion",
                  kind="fold", weights_sha256=PINNED["sff"]),
    )
}


def list_models(kind: str | None = ModelKind.INTERPOLATION.value) -> list[ModelSpec]:
    """The registered models of ``kind`` (None: every kind), weight-free baselines first.

    The default lists only interpolation models, the ``model(a, b, t)`` interface that ``fix``,
    ``eval`` and ``upsample-z`` drive.
    """
    if kind is not None and kind not in MODEL_KINDS:
        raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {kind!r}")
    return [spec for spec in REGISTRY.values() if kind is None or spec.kind == kind]


def model_kind(model: nn.Module) -> str:
    """The interface a loaded model offers: its ``kind`` attribute, "interpolation" by default."""
    return str(getattr(model, "kind", ModelKind.INTERPOLATION))


def require_interpolation(model: nn.Module, label: str) -> None:
    """Raise a one-line UsageError unless ``model`` offers the ``model(a, b, t)`` interface.

    ``label`` names the option or model in the message, e.g. ``"--model gan3d"``.
    """
    kind = model_kind(model)
    if kind != ModelKind.INTERPOLATION:
        raise UsageError(f"{label} is a {kind} model; --model takes an interpolation model (see `emrepair models`)"
                         + (", and --fold-model a fold model" if kind == ModelKind.FOLD else ""))


def get_spec(name: str) -> ModelSpec:
    """The spec registered under ``name``.

    Raises:
        UsageError: listing the known names.
    """
    if name not in REGISTRY:
        raise unknown_model_error(name)
    return REGISTRY[name]


def unknown_model_error(name: str) -> UsageError:
    """The error for a model name that is neither registered nor an existing file."""
    return UsageError(f"unknown model {name!r}; choose one of: {', '.join(REGISTRY)} or a checkpoint path")


def build_config(spec: ModelSpec, values: dict[str, Any], source: str) -> Any:
    """The spec's config dataclass from a checkpoint's dict, rejecting unknown or invalid fields."""
    known = {f.name for f in fields(spec.config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{source}: config fields {unknown} are unknown to model {spec.name!r}")
    try:
        return spec.config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: invalid {spec.name} config: {exc}") from exc


def resolve_torch_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device, with a UsageError for names torch does not know."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UsageError(f"unknown device {device!r}") from exc


def load_checkpoint_model(path: Path, expected: str | None = None) -> tuple[InterpolationModel, ModelMeta]:
    """Build the model a checkpoint file describes and load its weights (on the CPU).

    The file's SHA-256 is checked against a ``.sha256`` sidecar when there is one, and against the hash pinned in
    the registry: shipped weights that differ are refused; any other file loads with a warning naming its hash.
    """
    digest = file_sha256(path)
    verify_sidecar(path, digest)
    payload = read_checkpoint(path)  # weights_only=True: nothing in the file runs
    name = payload["model"]
    if name not in REGISTRY:
        raise InputError(f"checkpoint {path} is for model {name!r}, which this emrepair does not know")
    if expected is not None and name != expected:
        raise InputError(f"weights {path} are for model {name!r}, not {expected!r}")
    pinned = REGISTRY[expected].weights_sha256 if expected in REGISTRY else None
    source = verify_origin(path, digest, expected, pinned, weights_origin(path),
                           {spec.weights_sha256 for spec in REGISTRY.values() if spec.weights_sha256})
    spec = REGISTRY[name]
    config = build_config(spec, dict(payload["config"]), str(path))
    model = spec.cls(config)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise InputError(f"checkpoint {path} does not match model {name!r}: {str(exc).splitlines()[0]}") from exc
    trained_on = payload["meta"].get("trained_on")
    meta = ModelMeta(name, asdict(config), str(path), digest,
                     describe_trained_on(trained_on) if trained_on else None, source)
    return model, meta


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu",
               allow_random: bool = False) -> tuple[InterpolationModel, ModelMeta]:
    """Load a registered model (with its default weights) or a checkpoint file, in eval mode.

    Args:
        name_or_path: a registry name ("linear", "flow", "ssan", "dan") or a checkpoint path.
        device: where to put the model.
        allow_random: let a learned model without weights start from random initialisation
            (tests and benchmarks); its meta then has no weights_path and no trained_on.

    Raises:
        UsageError: unknown name, missing checkpoint file, or a learned model without weights.
        InputError: an unreadable, mismatched or checksum-failing checkpoint.
    """
    target = resolve_torch_device(device)
    key = str(name_or_path)
    if isinstance(name_or_path, str) and key in REGISTRY:
        spec = REGISTRY[key]
        weights = spec.weights_path()
        if weights is not None:
            model, meta = load_checkpoint_model(weights, expected=spec.name)
        elif spec.learned and not allow_random:
            raise UsageError(f"model {spec.name!r} has no trained weights yet; {TRAIN_HINTS[spec.kind]}")
        else:
            config = spec.config_cls()
            model = spec.cls(config)
            meta = ModelMeta(spec.name, asdict(config), None, None, None)
    else:
        path = Path(name_or_path).expanduser()
        if path.is_file():
            model, meta = load_checkpoint_model(path)
        elif isinstance(name_or_path, Path) or os.sep in key or path.suffix in (".pt", ".pth", ".ckpt"):
            raise UsageError(f"model checkpoint {key} does not exist")
        else:
            raise unknown_model_error(key)
    model = model.to(target).eval()
    if target.type == "cpu":
        channels_last_convs(model)
    return model, meta
