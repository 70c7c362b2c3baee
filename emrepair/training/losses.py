"""Training losses: Charbonnier pixel loss, and (when VGG16 ImageNet weights are on disk) the SSAN paper's
feature reconstruction + adaptive style-balance loss. Weights are never downloaded."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from emrepair.errors import InputError
from emrepair.models.base import check_shape

CHARBONNIER_EPS = 1e-6            # as in the SSAN paper
STYLE_WEIGHT = 1e6                # alpha_1: style-balance : feature : pixel = 1e6 : 1 : 1
FEATURE_WEIGHT = 1.0
PIXEL_WEIGHT = 1.0
STYLE_BALANCE_BETAS = (0.1, 1.0, 0.1)   # beta_0 (frame a), beta_1 (ground truth), beta_2 (frame b)

# torchvision's vgg16().features layout: conv widths, "M" = max-pool.
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
STYLE_LAYERS = (3, 8, 15, 22)     # relu1_2, relu2_2, relu3_3, relu4_3 indices in vgg16().features
FEATURE_LAYER = 22                # relu4_3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """Mean of sqrt((pred - target)^2 + eps^2) over (B, 1, H, W) tensors."""
    dims = check_shape(pred, "B,1,H,W", "pred")
    check_shape(target, "B,1,H,W", "target", **dims)
    diff = pred.float() - target.float()
    return torch.sqrt(diff * diff + eps * eps).mean()


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over (B, 1, H, W) tensors: the pixel loss whose optimum is the best PSNR (on noisy
    sections it favours the conditional mean, where Charbonnier favours the median)."""
    dims = check_shape(pred, "B,1,H,W", "pred")
    check_shape(target, "B,1,H,W", "target", **dims)
    return F.mse_loss(pred.float(), target.float())


PIXEL_LOSSES = {"charbonnier": charbonnier, "mse": mse}


def find_vgg_weights(explicit: str | Path | None = None) -> Path | None:
    """The VGG16 ImageNet state_dict to use: ``explicit`` (must exist), else torchvision's cached
    ``vgg16-*.pth`` in the torch hub folder, else None."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise InputError(f"--vgg-weights {path} does not exist")
        return path
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    found = sorted(folder.glob("vgg16-*.pth")) if folder.is_dir() else []
    return found[0] if found else None


class VGG16Features(nn.Module):
    """The convolutional part of VGG16 up to relu4_3, with torchvision's layer indices, frozen."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 3
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(width, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                width = int(item)
        self.layers = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: Path) -> "VGG16Features":
        """Load a torchvision ``vgg16`` state_dict (``features.N.*`` keys; the classifier is ignored).

        Raises:
            InputError: the file is unreadable or not VGG16 weights.
        """
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for corrupt files
            raise InputError(f"cannot read VGG16 weights {path}: {type(exc).__name__}") from exc
        net = cls()
        wanted = {k.split(".", 1)[1]: v for k, v in state.items()
                  if k.startswith("features.") and k.split(".")[1].isdigit() and int(k.split(".")[1]) < len(net.layers)}
        try:
            net.layers.load_state_dict(wanted, strict=True)
        except RuntimeError as exc:
            raise InputError(f"{path} does not hold VGG16 weights: {str(exc).splitlines()[0]}") from exc
        return net

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """(B, 1, H, W) in [0, 1] -> activations at the style layers (relu4_3 included)."""
        check_shape(x, "B,1,H,W", "x")
        h = (x.float().expand(-1, 3, -1, -1) - self.mean) / self.std
        out = {}
        for index, layer in enumerate(self.layers):
            h = layer(h)
            if index in STYLE_LAYERS:
                out[index] = h
        return out


def gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrices normalised by C H W."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def style_distance(x: dict[int, torch.Tensor], y: dict[int, torch.Tensor]) -> torch.Tensor:
    """Sum over the style layers of the mean squared Gram-matrix difference."""
    return sum(F.mse_loss(gram(x[j]), gram(y[j])) for j in STYLE_LAYERS)


class PerceptualStyleLoss(nn.Module):
    """alpha_1 L_bs + alpha_2 L_f + alpha_3 L_1 of the SSAN paper (Wang et al. 2021, eq. 8-11).

    L_bs, the adaptive style-balance loss, sums over the frames (a, ground truth, b)
    beta_j * sign(L_style(pred, f_j) - L_style(gt, f_j)) * L_style(pred, f_j): the prediction's style is
    pulled towards the truth, and towards or away from each input as far as the truth itself is.
    """

    def __init__(self, vgg: VGG16Features, pixel_loss: str = "charbonnier") -> None:
        super().__init__()
        self.vgg = vgg
        self.pixel_loss = PIXEL_LOSSES[pixel_loss]

    def forward(self, pred: torch.Tensor, target: torch.Tensor, a: torch.Tensor, b: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        """Loss terms for (B, 1, H, W) tensors; ``total`` is what to minimise."""
        pixel = self.pixel_loss(pred, target)
        fp = self.vgg(pred)
        with torch.no_grad():
            ft, fa, fb = self.vgg(target), self.vgg(a), self.vgg(b)
        feature = F.mse_loss(fp[FEATURE_LAYER], ft[FEATURE_LAYER])
        balance = torch.zeros((), device=pred.device)
        for beta, frame in zip(STYLE_BALANCE_BETAS, (fa, ft, fb)):
            to_pred = style_distance(fp, frame)
            with torch.no_grad():
                sign = torch.sign(to_pred - style_distance(ft, frame)) if frame is not ft else torch.ones(())
            balance = balance + beta * sign.to(to_pred) * to_pred
        total = STYLE_WEIGHT * balance + FEATURE_WEIGHT * feature + PIXEL_WEIGHT * pixel
        return {"total": total, "pixel": pixel.detach(), "feature": feature.detach(), "style": balance.detach()}
