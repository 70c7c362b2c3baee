"""The partial-loss thresholds of `emrepair detect` and `emrepair fix` (defaults: emrepair.detection.DetectConfig), and
the staining-precipitate and contrast-region options (defaults: emrepair.detection.damage_config.DamageConfig)."""

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


NoDamageOpt = Annotated[bool, typer.Option(
    "--no-damage", help="Do not look for staining precipitates and regional contrast changes (kinds 'precipitate' "
    "and 'contrast', labels 4 and 5), which are judged against both neighbours.")]
PrecipitateDarkOpt = Annotated[Optional[float], typer.Option(
    "--precipitate-dark", help="A staining precipitate is darker than this fraction of the section's median "
    "(and at least 400 px, compact, and absent from both neighbours). Default 0.2.")]
ContrastChangeOpt = Annotated[Optional[float], typer.Option(
    "--contrast-min-change", help="A region's contrast changed when its local mean differs from both neighbours' "
    "by at least this log ratio (0.2: 22 %; its spread by twice that). Default 0.2.")]
RepairPrecipitatesOpt = Annotated[bool, typer.Option(
    "--repair-precipitates", help="Synthesize the regions of the staining precipitates a --report marks (kind "
    "'precipitate'), like lost regions; off by default: they are left as they are.")]


def damage_config(no_damage: bool, precipitate_dark: float | None, contrast_min_change: float | None) -> Any:
    """The DamageConfig for `emrepair detect` (None with ``--no-damage``); UsageError for values outside (0, 1)
    or given with ``--no-damage``."""
    from dataclasses import replace

    from emrepair.detection.damage_config import DamageConfig
    from emrepair.errors import UsageError

    given = {flag: value for flag, value in (("--precipitate-dark", precipitate_dark),
                                             ("--contrast-min-change", contrast_min_change)) if value is not None}
    if no_damage:
        if given:
            raise UsageError(f"{', '.join(given)} cannot be used with --no-damage")
        return None
    for flag, value in given.items():
        if not 0.0 < value < 1.0:
            raise UsageError(f"{flag} must be between 0 and 1, not {value:g}")
    changes = {"precipitate_dark": precipitate_dark, "contrast_min_change": contrast_min_change}
    return replace(DamageConfig(), **{k: float(v) for k, v in changes.items() if v is not None})
