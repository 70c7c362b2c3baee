"""The partial-loss thresholds of `emrepair detect` and `emrepair fix` (defaults: emrepair.detection.DetectConfig)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

MinLostOpt = Annotated[Optional[float], typer.Option(
    "--min-lost-fraction", help="Report a section as partly lost (kind 'partial', only its lost region repaired) "
    "when at least this fraction of it is lost (flat, saturated, noise-filled, torn away, stripes). Default 0.03.")]
MissingFractionOpt = Annotated[Optional[float], typer.Option(
    "--missing-fraction", help="Call a section missing (replaced whole) when more than this fraction of it is "
    "lost. Default 0.9.")]
NoiseAutocorrOpt = Annotated[Optional[float], typer.Option(
    "--noise-autocorr", help="An area is noise-filled when its pixel-to-pixel correlation is below this "
    "(EM texture is about 0.4-0.95). Default 0.25.")]


def detect_config(min_lost_fraction: float | None, missing_fraction: float | None,
                  noise_autocorr: float | None) -> Any:
    """The DetectConfig with the thresholds given on the command line (None when none is given: the defaults);
    UsageError for values outside (0, 1)."""
    from dataclasses import replace

    from emrepair.detection import DetectConfig
    from emrepair.errors import UsageError

    changes: dict[str, float] = {}
    for flag, field, value in (("--min-lost-fraction", "min_lost_fraction", min_lost_fraction),
                               ("--missing-fraction", "lost_fraction", missing_fraction),
                               ("--noise-autocorr", "lost_noise_autocorr", noise_autocorr)):
        if value is None:
            continue
        if not 0.0 < value < 1.0:
            raise UsageError(f"{flag} must be between 0 and 1, not {value:g}")
        changes[field] = float(value)
    if not changes:
        return None
    config = replace(DetectConfig(), **changes)
    if config.min_lost_fraction > config.lost_fraction:
        raise UsageError(f"--min-lost-fraction {config.min_lost_fraction:g} is above --missing-fraction "
                         f"{config.lost_fraction:g}")
    return config
